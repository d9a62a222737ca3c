#!/bin/sh
# The client of the etcd workload: waits until every member is healthy, finds the leader,
# then puts one key over and over against it with wrk (put.lua), first one put at a time
# (sequential), then CONCURRENCY at a time, SECONDS each. Prints JSON lines.
#   client.sh SECONDS CONCURRENCY
set -e
seconds=$1 concurrency=$2
endpoints=$(for a in $TANSIV_ROLE_MEMBER; do printf 'http://%s:2379,' "$a"; done)
endpoints=${endpoints%,}
export ETCDCTL_API=3
until etcdctl --endpoints="$endpoints" --dial-timeout=1s endpoint health >/dev/null 2>&1; do
  sleep 0.2
done
# The leader: the member whose id its own status names as the leader's (etcdctl's JSON is
# the same in etcd 3.4 and 3.5).
leader=
for a in $TANSIV_ROLE_MEMBER; do
  status=$(etcdctl --endpoints="http://$a:2379" endpoint status -w json)
  id=$(echo "$status" | grep -o '"member_id":[0-9]*' | cut -d: -f2)
  lead=$(echo "$status" | grep -o '"leader":[0-9]*' | cut -d: -f2)
  if [ -n "$id" ] && [ "$id" = "$lead" ]; then leader=$a; fi
done
[ -n "$leader" ] || { echo "no leader found" >&2; exit 1; }
echo "{\"event\": \"leader\", \"address\": \"$leader\"}"
for c in 1 "$concurrency"; do
  WRK_LABEL="c$c" wrk -t1 -c"$c" -d"${seconds}s" -s /usr/local/share/tansiv/put.lua \
    "http://$leader:2379/v3/kv/put" >/dev/null
done
