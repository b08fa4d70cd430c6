#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/^    time.sleep(1).*$/    pass/' /work/train.py
