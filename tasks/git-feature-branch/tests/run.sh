#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/repo && git rev-parse -q --verify refs/heads/feature/login >/dev/null && [ "$(git rev-list --count main)" = "1" ] \
&& git ls-tree -r --name-only feature/login | grep -qx login.py && ! git ls-tree -r --name-only main | grep -qx login.py
