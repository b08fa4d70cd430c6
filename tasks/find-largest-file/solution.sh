#!/bin/bash
# reference solution
set -e
cd /work
cd /work/data && find . -type f -printf "%s %P\n" | sort -n | tail -1 | cut -d" " -f2 > /work/answer.txt
