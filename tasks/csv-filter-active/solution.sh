#!/bin/bash
# reference solution
set -e
cd /work
awk -F, 'NR==1 || $2=="active"' /work/accounts.csv > /work/active.csv
