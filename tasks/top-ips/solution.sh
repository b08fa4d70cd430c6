#!/bin/bash
# reference solution
set -e
cd /work
awk '{print $1}' /work/access.log | sort | uniq -c | sort -k1,1nr -k2 | head -3 | awk '{print $2}' > /work/top3.txt
