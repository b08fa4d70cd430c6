#!/bin/bash
# reference solution
set -e
cd /work
mkdir -p /work/dist && tar -C /work -czf /work/dist/site.tar.gz site
