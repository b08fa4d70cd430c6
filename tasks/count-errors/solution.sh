#!/bin/bash
# reference solution
set -e
cd /work
grep -ci error /work/app.log > /work/answer.txt
