#!/bin/bash
total=0
for f in $(ls $1/*.txt); do
  n=$(wc -l < $f)
  total=$((total + n))
done
echo $total
