#!/bin/bash
# reference solution
set -e
cd /work
cd /work/repo && git config --global user.name dev && git config --global user.email dev@example.com && git config --global init.defaultBranch main && git revert --no-edit HEAD
