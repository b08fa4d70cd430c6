#!/bin/bash
# reference solution
set -e
cd /work
cd /work/notes && for f in *.txt; do mv "$f" "${f%.txt}.md"; done
