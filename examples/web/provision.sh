#!/bin/sh
# Files the web workload's server serves, the same bytes every build.
set -e
mkdir -p /srv/www
for size in 1 10 100; do
  head -c $((size * 1024)) /dev/zero | tr '\0' 'x' > /srv/www/${size}k.html
done
