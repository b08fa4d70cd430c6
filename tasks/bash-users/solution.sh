#!/bin/bash
# reference solution
set -e
cd /work
awk -F: '$7=="/bin/bash"{print $1}' /work/users.txt > /work/bash_users.txt
