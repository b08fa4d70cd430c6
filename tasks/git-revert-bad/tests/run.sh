#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/repo && [ "$(python3 calc.py)" = "4" ] && [ "$(git rev-list --count HEAD)" = "4" ] && [ -z "$(git status --porcelain)" ] \
&& git log -1 --format=%s | grep -qi revert
