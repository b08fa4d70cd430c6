#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && tar -tzf dist/site.tar.gz | grep -qx "site/index.html" && tar -tzf dist/site.tar.gz | grep -qx "site/css/main.css"
