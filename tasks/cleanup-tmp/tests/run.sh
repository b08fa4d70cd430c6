#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/build && [ -z "$(find . -name "*.tmp")" ] && [ -f main.o ] && [ -f lib/util.o ] && [ -f keep.tmpl ]
