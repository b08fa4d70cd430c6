#!/bin/bash
# verifier: exits 0 when the task is solved
printf "10.0.0.3\n10.0.0.1\n10.0.0.7\n" | cmp -s - /work/top3.txt
