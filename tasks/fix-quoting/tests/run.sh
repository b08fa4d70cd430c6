#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && [ "$(./count_lines.sh docs | tr -d "[:space:]")" = "6" ]
