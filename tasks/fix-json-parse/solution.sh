#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/json.loads(open("data.json"))/json.load(open("data.json"))/; s/len(scores) - 1/len(scores)/' /work/report.py
