#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(cd /work && python3 main.py)" = "total=60" ] && grep -q "def add_all" /work/mathutil.py
