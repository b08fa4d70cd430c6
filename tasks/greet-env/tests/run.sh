#!/bin/bash
# verifier: exits 0 when the task is solved
[ "$(/work/greet.sh)" = "Hello, world!" ] && [ "$(NAME=Ada /work/greet.sh)" = "Hello, Ada!" ] && [ "$(NAME= /work/greet.sh)" = "Hello, world!" ]
