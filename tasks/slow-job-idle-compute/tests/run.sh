#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(tr -d "[:space:]" < /work/answer.txt)" = "142913828922" ]
