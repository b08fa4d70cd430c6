#!/bin/bash
# reference solution
set -e
cd /work
find /work/build -type f -name "*.tmp" -delete
