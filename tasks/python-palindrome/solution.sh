#!/bin/bash
# reference solution
set -e
cd /work
cat > /work/pal.py <<'EOF'
def is_palindrome(s):
    t = [c.lower() for c in s if c.isalnum()]
    return t == t[::-1]
EOF
