#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/range(1, n)/range(1, n + 1)/' /work/sum_to.py
