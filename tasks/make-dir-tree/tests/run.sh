#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && [ -d project/src ] && [ -d project/tests ] && [ -d project/docs ] && [ -f project/src/__init__.py ] && [ ! -s project/src/__init__.py ]
