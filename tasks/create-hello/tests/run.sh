#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(cat /work/hello.txt)" = "Hello, rollcage!" ]
