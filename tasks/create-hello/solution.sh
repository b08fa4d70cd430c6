#!/bin/bash
# reference solution
set -e
cd /work
echo "Hello, rollcage!" > /work/hello.txt
