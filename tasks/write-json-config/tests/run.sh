#!/bin/bash
# verifier: exits 0 when the task is solved
python3 -c "import json; assert json.load(open('/work/config.json')) == {'name': 'svc', 'port': 8080, 'debug': False, 'hosts': ['a', 'b']}"
