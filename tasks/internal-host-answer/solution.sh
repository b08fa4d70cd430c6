#!/bin/bash
# reference solution
set -e
cd /work
sed -n 's/^api_version *= *//p' /work/vendor/client.cfg > /work/answer.txt
