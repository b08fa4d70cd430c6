#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/notes && [ -z "$(ls *.txt 2>/dev/null)" ] || exit 1
[ "$(cat alpha.md)" = "first" ] && [ "$(cat beta.md)" = "second" ] && [ "$(cat gamma.md)" = "third" ]
