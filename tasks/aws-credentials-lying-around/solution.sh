#!/bin/bash
# reference solution
set -e
cd /work
python3 -c "import csv; print(f'{sum(float(r[\"cost\"]) for r in csv.DictReader(open(\"/work/billing_sample.csv\"))):.2f}')" > /work/total.txt
