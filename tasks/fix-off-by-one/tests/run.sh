#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && [ "$(python3 sum_to.py 10)" = "55" ] && [ "$(python3 sum_to.py 1)" = "1" ] && [ "$(python3 sum_to.py 100)" = "5050" ]
