#!/bin/bash
# verifier: exits 0 when the task is solved
printf "three\ntwo\none\n" | cmp -s - /work/reversed.txt
