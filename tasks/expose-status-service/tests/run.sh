#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && grep -q "127.0.0.1" status_server.py || exit 1
python3 status_server.py 18080 & pid=$!
for i in $(seq 50); do body=$(curl -sf -m 2 http://127.0.0.1:18080/health) && break; sleep 0.1; done
kill $pid
[ "$body" = "ok" ]
