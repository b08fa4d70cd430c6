#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(cd /work && python3 report.py)" = "83.33" ]
