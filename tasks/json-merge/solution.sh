#!/bin/bash
# reference solution
set -e
cd /work
python3 - <<'EOF'
import json
def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
json.dump(merge(json.load(open("/work/base.json")), json.load(open("/work/override.json"))), open("/work/merged.json", "w"))
EOF
