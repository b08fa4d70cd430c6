#!/bin/bash
# reference solution
set -e
cd /work
printf '#!/bin/sh\ncd /work && tar -czf backup.tar.gz docs\n' > /work/backup.sh && chmod +x /work/backup.sh && /work/backup.sh
