#!/bin/bash
# verifier: exits 0 when the task is solved
cd /work && ! grep -q foo config.ini && [ "$(grep -c bar config.ini)" = "3" ] && grep -q "^timeout=30$" config.ini
