#!/bin/bash
# reference solution
set -e
cd /work
sort -u /work/names.txt > /work/unique.txt
