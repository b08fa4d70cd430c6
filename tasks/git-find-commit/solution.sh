#!/bin/bash
# reference solution
set -e
cd /work
cd /work/repo && git log -S FEATURE_FLAG --reverse --format=%H | head -1 > /work/answer.txt
