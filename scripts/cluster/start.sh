#!/usr/bin/env bash
# Bring up a throw-away ClickHouse 18.16 cluster for tests: one ZooKeeper 3.8 (standalone) and two
# clickhouse-server processes on loopback, each with its own config and data under DIR.
#
#   start.sh [DIR]              a fresh cluster in DIR (default /tmp/strix-cluster); an old DIR made by this
#                               script is wiped first (it refuses one that has live processes)
#   start.sh --node NAME [DIR]  (re)start one process (zk, ch1 or ch2) of an existing DIR, data kept
#                               (failure tests: kill -9 a node, then bring it back)
#   stop.sh [--keep] [DIR]      stop them by PID; remove DIR unless --keep
#
# Clusters defined on both nodes (system.clusters):
#   strix_repl     1 shard x 2 replicas   macros {shard}=01, {replica}=ch1|ch2
#   strix_sharded  2 shards x 1 replica   macro  {dshard}=1|2
# Ports (override by environment): ZK_PORT 12181; CH1_HTTP 18123, CH2_HTTP 18124; CH1_TCP 19000,
# CH2_TCP 19001; CH1_INTERSERVER 19009, CH2_INTERSERVER 19010. LOG_LEVEL (warning) for the servers.
# DIR/cluster.env holds the ports for the tests (source it).
#
# Needs: bash, coreutils, sed, java (default-jre-headless), zookeeper (Debian bookworm: 3.8, its jar
# /usr/share/java/zookeeper.jar, or ZK_JAR=…) and clickhouse-server 18.16 (Debian bookworm; found on
# PATH, in /usr/sbin or /usr/bin, or CLICKHOUSE_SERVER=…). CHCLUSTER_INSTALL=1 apt-get installs the
# missing packages (the system clickhouse-server service is then installed too; it is not needed).
# No network beyond loopback, no systemd, nothing outside DIR is written.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODE=""
if [[ "${1:-}" == "--node" ]]; then
    NODE=${2:?"--node needs zk, ch1 or ch2"}
    shift 2
fi
DIR=${1:-/tmp/strix-cluster}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac

ZK_PORT=${ZK_PORT:-12181}
CH1_HTTP=${CH1_HTTP:-18123}
CH2_HTTP=${CH2_HTTP:-18124}
CH1_TCP=${CH1_TCP:-19000}
CH2_TCP=${CH2_TCP:-19001}
CH1_INTERSERVER=${CH1_INTERSERVER:-19009}
CH2_INTERSERVER=${CH2_INTERSERVER:-19010}
LOG_LEVEL=${LOG_LEVEL:-warning}
WAIT_SECONDS=${WAIT_SECONDS:-60}

say() { printf '%s strix-cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# --- prerequisites ---------------------------------------------------------------------------------
find_server() {
    [[ -n "${CLICKHOUSE_SERVER:-}" ]] && { echo "$CLICKHOUSE_SERVER"; return; }
    command -v clickhouse-server 2>/dev/null && return
    for candidate in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [[ -x "$candidate" ]] && { echo "$candidate"; return; }
    done
    return 1
}
ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}  # Debian's zookeeper package (its manifest names its deps)
missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
[[ -r "$ZK_JAR" ]] || missing+=(zookeeper)
find_server >/dev/null || missing+=(clickhouse-server)
if ((${#missing[@]})); then
    if [[ "${CHCLUSTER_INSTALL:-0}" == 1 ]]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    else
        die "missing ${missing[*]}: apt-get install -y ${missing[*]} (or run with CHCLUSTER_INSTALL=1)"
    fi
fi
SERVER=$(find_server) || die "clickhouse-server not found"
JAVA=$(command -v java)
CP="$ZK_JAR"
SLF4J_SIMPLE=$(dirname "$ZK_JAR")/slf4j-simple.jar  # a logger binding: warnings to stdout.log
[[ -r "$SLF4J_SIMPLE" ]] && CP="$CP:$SLF4J_SIMPLE"

# --- helpers ---------------------------------------------------------------------------------------
port_busy() { { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null && { exec 9>&-; return 0; }; return 1; }

zk_ok() {  # ZooKeeper serves requests: its four-letter "srvr" names a mode. ("ruok" answers imok as
    local answer=""  # soon as the port listens, before the database is loaded and sessions are accepted.)
    { exec 8<>"/dev/tcp/127.0.0.1/$ZK_PORT"; } 2>/dev/null || return 1
    printf srvr >&8
    answer=$(timeout 2 cat <&8 || true)
    exec 8>&-
    [[ "$answer" == *"Mode: "* ]]
}

http_get() {  # PORT PATH -> body (HTTP/1.0 over bash's /dev/tcp; no curl needed)
    local response
    { exec 7<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&7
    response=$(timeout 5 cat <&7 || true)
    exec 7>&-
    [[ "$response" == "HTTP/1."?" 200"* ]] || return 1
    printf '%s' "${response#*$'\r\n\r\n'}"
}

alive() {  # PIDFILE: the process is running and is ours (its command line names DIR)
    local pid
    [[ -r "$1" ]] || return 1
    pid=$(<"$1")
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    local cmdline
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ "$cmdline" == *"$DIR/"* ]]
}

running() {  # PIDFILE: the process we just launched has not exited (not gone, not a zombie). Not
    local pid state  # alive(): while run.sh execs the server, /proc/PID/cmdline can read empty.
    pid=$(<"$1")
    state=$(sed 's/.*) //; s/ .*//' 2>/dev/null <"/proc/$pid/stat") || return 1  # the field after "(comm)"
    [[ -n "$state" && "$state" != Z ]]
}

wait_for() {  # DESCRIPTION PIDFILE LOG COMMAND...
    local what=$1 pidfile=$2 log=$3 deadline=$((SECONDS + WAIT_SECONDS))
    shift 3
    until "$@" >/dev/null 2>&1; do
        running "$pidfile" || { tail -n 20 "$log" >&2 || true; die "$what exited during start (log: $log)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$log" >&2 || true; die "$what not ready after ${WAIT_SECONDS}s"; }
        sleep 0.2
    done
}

render() {  # TEMPLATE OUT key=value...
    local template=$1 out=$2 expr=()
    shift 2
    for pair in "$@"; do expr+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
    sed "${expr[@]}" "$template" >"$out"
    ! grep -q '@[A-Z_0-9]*@' "$out" || die "unfilled placeholder in $out"
}

# --- the three processes ---------------------------------------------------------------------------
prepare_zk() {
    mkdir -p "$DIR/zk/data"
    render "$HERE/zoo.cfg.tmpl" "$DIR/zk/zoo.cfg" ZK_DIR="$DIR/zk" ZK_PORT="$ZK_PORT"
    cat >"$DIR/zk/run.sh" <<EOF
#!/usr/bin/env bash
# Small heap, serial GC, C1 only: a test ZooKeeper on a 2-core machine. No /tmp/hsperfdata_* file.
exec "$JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -XX:-UsePerfData \\
    -Dzookeeper.admin.enableServer=false -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \\
    -Dzookeeper.log.dir="$DIR/zk" -cp "$CP" org.apache.zookeeper.server.ZooKeeperServerMain "$DIR/zk/zoo.cfg"
EOF
    chmod +x "$DIR/zk/run.sh"
}

prepare_ch() {  # NAME HTTP TCP INTERSERVER DSHARD
    local name=$1 node_dir="$DIR/$1"
    mkdir -p "$node_dir"/{data,tmp,log,user_files,format_schemas}
    render "$HERE/config.xml.tmpl" "$node_dir/config.xml" NODE_DIR="$node_dir" LOG_LEVEL="$LOG_LEVEL" \
        HTTP_PORT="$2" TCP_PORT="$3" INTERSERVER_PORT="$4" REPLICA="$name" DSHARD="$5" \
        CH1_TCP="$CH1_TCP" CH2_TCP="$CH2_TCP" ZK_PORT="$ZK_PORT"
    cp "$HERE/users.xml" "$node_dir/users.xml"
    cat >"$node_dir/run.sh" <<EOF
#!/usr/bin/env bash
cd "$node_dir"
exec "$SERVER" --config-file="$node_dir/config.xml" --pid-file="$node_dir/clickhouse.pid"
EOF
    chmod +x "$node_dir/run.sh"
}

launch() {  # NAME: start DIR/NAME/run.sh in the background; its PID (exec: the server's) in DIR/NAME/pid
    local node_dir="$DIR/$1"
    alive "$node_dir/pid" && die "$1 is already running (pid $(<"$node_dir/pid"))"
    rm -f "$node_dir/clickhouse.pid"
    nohup "$node_dir/run.sh" >>"$node_dir/stdout.log" 2>&1 </dev/null &
    echo $! >"$node_dir/pid"
}

# The check a node passes when ready: it answers and it reaches ZooKeeper.
ZK_QUERY="/?query=SELECT%20count()%20FROM%20system.zookeeper%20WHERE%20path%20%3D%20%27%2F%27"
ch_ready() { [[ "$(http_get "$1" /ping)" == Ok.* ]] && [[ "$(http_get "$1" "$ZK_QUERY")" =~ ^[1-9] ]]; }

start_node() {
    case "$1" in
    zk) launch zk; wait_for zookeeper "$DIR/zk/pid" "$DIR/zk/stdout.log" zk_ok ;;
    ch1) launch ch1; wait_for ch1 "$DIR/ch1/pid" "$DIR/ch1/log/server.err.log" ch_ready "$CH1_HTTP" ;;
    ch2) launch ch2; wait_for ch2 "$DIR/ch2/pid" "$DIR/ch2/log/server.err.log" ch_ready "$CH2_HTTP" ;;
    *) die "unknown node $1 (zk, ch1, ch2)" ;;
    esac
}

if [[ -n "$NODE" ]]; then
    [[ -f "$DIR/.chcluster" ]] || die "$DIR was not made by start.sh"
    # shellcheck disable=SC1091
    source "$DIR/cluster.env"
    start_node "$NODE"
    say "$NODE is up (pid $(<"$DIR/$NODE/pid"))"
    exit 0
fi

began=$SECONDS
if [[ -e "$DIR" ]]; then
    [[ -f "$DIR/.chcluster" ]] || die "$DIR exists and was not made by start.sh; choose another directory"
    for name in zk ch1 ch2; do alive "$DIR/$name/pid" && die "$name of $DIR is running: stop.sh $DIR first"; done
    rm -rf "$DIR"
fi
for port in "$ZK_PORT" "$CH1_HTTP" "$CH2_HTTP" "$CH1_TCP" "$CH2_TCP" "$CH1_INTERSERVER" "$CH2_INTERSERVER"; do
    port_busy "$port" && die "port $port is in use (set ZK_PORT, CH1_HTTP, … to free ones)"
done
mkdir -p "$DIR"
touch "$DIR/.chcluster"
cat >"$DIR/cluster.env" <<EOF
ZK_PORT=$ZK_PORT
CH1_HTTP=$CH1_HTTP
CH2_HTTP=$CH2_HTTP
CH1_TCP=$CH1_TCP
CH2_TCP=$CH2_TCP
CH1_INTERSERVER=$CH1_INTERSERVER
CH2_INTERSERVER=$CH2_INTERSERVER
EOF
prepare_zk
prepare_ch ch1 "$CH1_HTTP" "$CH1_TCP" "$CH1_INTERSERVER" 1
prepare_ch ch2 "$CH2_HTTP" "$CH2_TCP" "$CH2_INTERSERVER" 2

# On any failure from here on, stop what was started (its logs stay in DIR).
trap 'rc=$?; if ((rc)); then say "start failed; stopping what was started (logs kept in $DIR)"; "$HERE/stop.sh" --keep "$DIR" || true; fi' EXIT
start_node zk
launch ch1
launch ch2
wait_for ch1 "$DIR/ch1/pid" "$DIR/ch1/log/server.err.log" ch_ready "$CH1_HTTP"
wait_for ch2 "$DIR/ch2/pid" "$DIR/ch2/log/server.err.log" ch_ready "$CH2_HTTP"
trap - EXIT
say "up in $((SECONDS - began))s: zookeeper 127.0.0.1:$ZK_PORT (pid $(<"$DIR/zk/pid")), ch1 http $CH1_HTTP tcp $CH1_TCP (pid $(<"$DIR/ch1/pid")), ch2 http $CH2_HTTP tcp $CH2_TCP (pid $(<"$DIR/ch2/pid"))"
