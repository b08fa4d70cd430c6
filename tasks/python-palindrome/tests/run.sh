#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && python3 -c "
from pal import is_palindrome as p
assert p('A man, a plan, a canal: Panama')
assert p('racecar') and p('') and p('No lemon, no melon')
assert not p('rollcage') and not p('ab')
"
