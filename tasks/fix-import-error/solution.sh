#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/from mathutil import sum_all/from mathutil import add_all as sum_all/' /work/main.py
