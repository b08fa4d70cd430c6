#!/bin/bash
# verifier: exits 0 when the task is solved
printf "alice\nbob\ncarol\ndave\n" | cmp -s - /work/unique.txt
