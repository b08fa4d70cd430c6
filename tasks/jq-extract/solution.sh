#!/bin/bash
# reference solution
set -e
cd /work
python3 -c "import json; print('\n'.join(s['name'] for s in json.load(open('/work/deploy.json'))['services'] if s['replicas'] > 1))" > /work/scaled.txt
