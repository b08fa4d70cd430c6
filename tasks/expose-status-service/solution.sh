#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/self.send_response(500)/self.send_response(200)/' /work/status_server.py
