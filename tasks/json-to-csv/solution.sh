#!/bin/bash
# reference solution
set -e
cd /work
python3 - <<'EOF'
import csv, json
users = sorted(json.load(open("/work/users.json")), key=lambda u: u["id"])
with open("/work/users.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "name", "email"])
    for u in users:
        w.writerow([u["id"], u["name"], u["email"]])
EOF
