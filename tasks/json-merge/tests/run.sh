#!/bin/bash
# verifier: exits 0 when the task is solved
python3 -c "import json; d=json.load(open('/work/merged.json')); assert d == {'name': 'svc', 'db': {'host': 'db2', 'port': 5432, 'pool': 10}, 'debug': True, 'tags': ['x']}, d"
