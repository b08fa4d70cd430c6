#!/bin/bash
# reference solution
set -e
cd /work
echo '{"name": "svc", "port": 8080, "debug": false, "hosts": ["a", "b"]}' > /work/config.json
