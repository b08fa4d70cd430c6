#!/bin/bash
# verifier: exits 0 when the task is solved
python3 -c "import json; assert json.load(open('/work/settings.json')) == {'title': 'demo', 'server': {'port': 8080, 'hosts': ['a', 'b']}, 'debug': False}"
