#!/bin/bash
# reference solution
set -e
cd /work
find /work/logs -type f -name "*.log" | wc -l > /work/answer.txt
