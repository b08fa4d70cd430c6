#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(tr -d "[:space:]" < /work/region.txt)" = "ap-southeast-2" ]
