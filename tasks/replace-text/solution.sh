#!/bin/bash
# reference solution
set -e
cd /work
sed -i 's/foo/bar/g' /work/config.ini
