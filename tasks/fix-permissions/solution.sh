#!/bin/bash
# reference solution
set -e
cd /work
chmod u+x /work/scripts/deploy.sh && chmod 600 /work/secret.txt
