#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/site && [ "$(git log --format=%s)" = "initial commit" ] && git ls-files | grep -qx README.md && [ -z "$(git status --porcelain)" ]
