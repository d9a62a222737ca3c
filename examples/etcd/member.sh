#!/bin/sh
# One etcd member of the cluster its role forms (the workload's member role): its peers are
# the member role's addresses, named m0, m1... in that order. Data in RAM, like the guest.
set -e
cluster= i=0
for a in $TANSIV_ROLE_MEMBER; do
  cluster="${cluster:+$cluster,}m$i=http://$a:2380"
  i=$((i + 1))
done
exec etcd --name "m$TANSIV_INDEX" --data-dir /tmp/etcd \
  --listen-peer-urls "http://$TANSIV_ADDRESS:2380" \
  --initial-advertise-peer-urls "http://$TANSIV_ADDRESS:2380" \
  --listen-client-urls "http://$TANSIV_ADDRESS:2379" \
  --advertise-client-urls "http://$TANSIV_ADDRESS:2379" \
  --initial-cluster "$cluster" --initial-cluster-state new \
  --initial-cluster-token tansiv --log-level error "$@"
