#!/bin/bash
# reference solution
set -e
cd /work
cd /work/site && git config --global user.name dev && git config --global user.email dev@example.com && git config --global init.defaultBranch main && git init -q && git add README.md && git commit -qm "initial commit"
