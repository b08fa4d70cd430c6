#!/bin/bash
# reference solution
set -e
cd /work
mkdir -p project/src project/tests project/docs && touch project/src/__init__.py
