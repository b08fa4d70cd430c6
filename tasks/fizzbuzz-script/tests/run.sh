#!/bin/bash
# verifier: exits 0 when the task is solved
out=$(/work/fizzbuzz.sh 15) || exit 1
expected=$(printf "1\n2\nFizz\n4\nBuzz\nFizz\n7\n8\nFizz\nBuzz\n11\nFizz\n13\n14\nFizzBuzz")
[ "$out" = "$expected" ] && [ "$(/work/fizzbuzz.sh 5 | tail -1)" = "Buzz" ]
