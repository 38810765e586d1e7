#!/usr/bin/env bash
# A throw-away ClickHouse cluster on this machine, for the tests and benchmarks of cluster mode:
# ZooKeeper (Debian's zookeeper package) and two more clickhouse-server processes on free loopback
# ports, carrying both layouts Strix supports at once (docs/OPERATIONS.md, "ClickHouse clusters"):
#
#   strix_repl     1 shard x 2 replicas   ZooKeeper paths with {shard}
#   strix_sharded  2 shards x 1 replica   ZooKeeper paths with {dshard}
#
#   scripts/cluster.sh start [DIR]           bring it up (about 1-3 s); DIR defaults to /tmp/strix-cluster
#   scripts/cluster.sh stop [DIR]            stop it and remove DIR
#   scripts/cluster.sh node NAME [DIR]       (re)start one process (zk, ch1, ch2) of DIR, data kept
#   scripts/cluster.sh env repl|sharded [DIR]  the Strix settings for a layout (source them)
#
# The system ClickHouse (9000/8123) is not touched. Ports: see scripts/cluster/start.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command=${1:-}
case "$command" in
start)
    exec "$HERE/cluster/start.sh" "${2:-/tmp/strix-cluster}" ;;
stop)
    exec "$HERE/cluster/stop.sh" "${2:-/tmp/strix-cluster}" ;;
node)
    exec "$HERE/cluster/start.sh" --node "${2:?node needs zk, ch1 or ch2}" "${3:-/tmp/strix-cluster}" ;;
env)
    layout=${2:?env needs repl or sharded}
    dir=${3:-/tmp/strix-cluster}
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
    case "$layout" in
    repl) name=strix_repl macro='{shard}' ;;
    sharded) name=strix_sharded macro='{dshard}' ;;
    *) echo "layout must be repl or sharded" >&2; exit 2 ;;
    esac
    echo "STRIX_CLICKHOUSE_URL=clickhouse://default:@127.0.0.1:$CH1_TCP/?http_port=$CH1_HTTP"
    echo "STRIX_CLICKHOUSE_CLUSTER=$name"
    echo "STRIX_CLICKHOUSE_ZK_PATH=/clickhouse/tables/$macro/{database}/{table}"
    echo "STRIX_CLICKHOUSE_HTTP_PORTS=127.0.0.1:$CH1_TCP=$CH1_HTTP,127.0.0.1:$CH2_TCP=$CH2_HTTP"
    ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    [[ "$command" == -h || "$command" == --help ]] || exit 2 ;;
esac
