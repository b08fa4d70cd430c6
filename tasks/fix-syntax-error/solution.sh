#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/^def count(items)$/def count(items):/' /work/app.py
