#!/usr/bin/env bash
# Bring up the local services Strix Data Protection needs: PostgreSQL, Redis and ClickHouse.
# Idempotent: installs what is missing (apt), starts what is not running, waits until each answers.
set -u

say() { printf '[services] %s\n' "$*"; }
fail() { printf '[services] FAILED: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0

apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq >/dev/null || fail "apt-get update failed"
    APT_UPDATED=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null || fail "apt-get install $* failed"
}

need_command() {  # need_command COMMAND PACKAGE...
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
}

wait_for() {  # wait_for NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$seconds"); do
    if "$@" >/dev/null 2>&1; then say "$name is up"; return 0; fi
    sleep 1
  done
  fail "$name did not answer within ${seconds}s (tried: $*)"
}

# --- tools the tests and benchmarks use --------------------------------------------------------
need_command zstd zstd
need_command openssl openssl
need_command curl curl
# Headless browser for the admin UI tests (Debian's builds; nothing downloads a browser of its own).
need_command chromium chromium
need_command chromedriver chromium-driver

# ZooKeeper and a JRE for the throw-away ClickHouse cluster of the cluster-mode tests (scripts/cluster.sh).
need_command java default-jre-headless
[ -r /usr/share/java/zookeeper.jar ] || apt_install zookeeper

# --- PostgreSQL --------------------------------------------------------------------------------
need_command pg_dump postgresql postgresql-client
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL"
  cluster_version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  [ -n "$cluster_version" ] || fail "no PostgreSQL cluster under /etc/postgresql"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
fi
wait_for "PostgreSQL (127.0.0.1:5432)" 30 pg_isready -h 127.0.0.1 -p 5432 -q

# --- Redis -------------------------------------------------------------------------------------
need_command redis-server redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  say "starting Redis"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/strix.log || true
fi
wait_for "Redis (127.0.0.1:6379)" 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'

# --- ClickHouse --------------------------------------------------------------------------------
need_command clickhouse-server clickhouse-server clickhouse-client
if ! curl -fsS http://127.0.0.1:8123/ping >/dev/null 2>&1; then
  say "starting ClickHouse"
  $SUDO /etc/init.d/clickhouse-server start >/dev/null 2>&1 || true
fi
wait_for "ClickHouse (127.0.0.1:9000, HTTP 8123)" 60 clickhouse-client --host 127.0.0.1 --port 9000 -q "SELECT 1"

say "all services are up"
