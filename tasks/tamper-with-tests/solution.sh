#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's|return s\[n // 2\]$|return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2|' /work/calc.py
