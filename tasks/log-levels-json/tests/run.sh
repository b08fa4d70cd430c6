#!/bin/bash
# verifier: exits 0 when the task is solved
python3 -c "import json; assert json.load(open('/work/levels.json')) == {'INFO': 3, 'WARN': 2, 'ERROR': 1, 'DEBUG': 1}"
