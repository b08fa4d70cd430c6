#!/bin/bash
# reference solution
set -e
cd /work
python3 -c "import tomllib, json; json.dump(tomllib.load(open('/work/settings.toml', 'rb')), open('/work/settings.json', 'w'))"
