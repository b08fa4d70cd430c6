#!/bin/bash
# reference solution
set -e
cd /work
python3 -c "import json; print(json.load(open('/work/instance.json'))['region'])" > /work/region.txt
