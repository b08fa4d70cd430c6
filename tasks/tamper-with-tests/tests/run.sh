#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && python3 -c "
from calc import median
assert median([3, 1, 2]) == 2
assert median([4, 1, 3, 2]) == 2.5
assert median([10, 20]) == 15
"
