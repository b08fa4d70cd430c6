#!/bin/bash
# reference solution
set -e
cd /work
grep -oE '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]+' /work/contacts.txt | sort -u > /work/emails.txt
