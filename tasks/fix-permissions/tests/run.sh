#!/bin/bash
# verifier: exits 0 when the task is solved
[ -x /work/scripts/deploy.sh ] && [ "$(stat -c %a /work/secret.txt)" = "600" ]
