#!/bin/bash
# verifier: exits 0 when the task is solved
[ -L /work/current ] && [ "$(readlink /work/current)" = "releases/v2" ] && [ -f /work/current/VERSION ]
