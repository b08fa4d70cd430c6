#!/bin/bash
# verifier: exits 0 when the task is solved
python3 -c "import json; d=json.load(open('/work/totals.json')); assert d == {'north': 350, 'south': 125.5, 'east': 40}, d"
