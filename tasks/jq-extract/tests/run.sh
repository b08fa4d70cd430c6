#!/bin/bash
# verifier: exits 0 when the task is solved
printf "api\nworker\n" | cmp -s - /work/scaled.txt
