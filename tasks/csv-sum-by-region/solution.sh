#!/bin/bash
# reference solution
set -e
cd /work
python3 - <<'EOF'
import csv, json
totals = {}
for row in csv.DictReader(open("/work/sales.csv")):
    totals[row["region"]] = totals.get(row["region"], 0) + float(row["amount"])
json.dump({k: (int(v) if v == int(v) else v) for k, v in totals.items()}, open("/work/totals.json", "w"))
EOF
