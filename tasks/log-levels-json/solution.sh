#!/bin/bash
# reference solution
set -e
cd /work
awk '{print $2}' /work/service.log | sort | uniq -c | awk 'BEGIN{printf "{"} {printf "%s\"%s\": %d", (NR>1?", ":""), $2, $1} END{print "}"}' > /work/levels.json
