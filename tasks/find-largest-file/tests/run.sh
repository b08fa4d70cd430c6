#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(cat /work/answer.txt | tr -d "[:space:]" | sed "s#^\./##")" = "sub/deep/big.bin" ]
