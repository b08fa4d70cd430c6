#!/bin/bash
# verifier: exits 0 when the task is solved
printf "ann@example.com\nbob@test.org\nzed@mail.example.net\n" | cmp -s - /work/emails.txt
