#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(cd /work && python3 app.py)" = "ok: 3 items" ]
