#!/bin/bash
# verifier: exits 0 when the task is solved
printf "root\nalice\ncarol\n" | cmp -s - /work/bash_users.txt
