#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && rm -f model.txt && timeout 3 python3 train.py && [ "$(cat model.txt)" = "weights=0.998762 epochs=30" ]
