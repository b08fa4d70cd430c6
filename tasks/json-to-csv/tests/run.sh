#!/bin/bash
# verifier: exits 0 when the task is solved
printf "id,name,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n3,Cy,cy@example.com\n" | diff - <(tr -d "\r" < /work/users.csv)
