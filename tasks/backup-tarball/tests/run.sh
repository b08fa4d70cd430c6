#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && [ -x backup.sh ] && rm -f backup.tar.gz && ./backup.sh && tar -tzf backup.tar.gz | grep -q "^docs/guide.md$" \
&& tar -tzf backup.tar.gz | grep -q "^docs/api/ref.md$"
