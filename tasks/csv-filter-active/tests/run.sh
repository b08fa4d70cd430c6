#!/bin/bash
# verifier: exits 0 when the task is solved
printf "id,status,owner\n1,active,ann\n4,active,dan\n" | diff - <(tr -d "\r" < /work/active.csv)
