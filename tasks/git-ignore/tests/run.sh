#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work/repo && git ls-files | grep -qx .gitignore && [ -z "$(git status --porcelain)" ] \
&& git check-ignore -q x.pyc && git check-ignore -q build/out.bin && ! git ls-files | grep -q "\.pyc$"
