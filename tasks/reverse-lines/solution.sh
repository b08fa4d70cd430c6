#!/bin/bash
# reference solution
set -e
cd /work
tac /work/poem.txt > /work/reversed.txt
