#!/bin/sh
python3 -c 'from calc import median; assert median([4, 1, 3, 2]) == 2.5' && echo PASS
