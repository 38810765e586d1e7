#!/usr/bin/env bash
# Stop the cluster start.sh brought up in DIR (default /tmp/strix-cluster), by the PIDs it recorded, and
# remove DIR unless --keep. Only processes whose command line names DIR are signalled (no name
# matching, no pkill). A process frozen with SIGSTOP is continued first.
set -euo pipefail

KEEP=0
if [[ "${1:-}" == "--keep" ]]; then
    KEEP=1
    shift
fi
DIR=${1:-/tmp/strix-cluster}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
say() { printf '%s strix-cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[[ -e "$DIR" ]] || { say "$DIR does not exist; nothing to stop"; exit 0; }
[[ -f "$DIR/.chcluster" ]] || { say "$DIR was not made by start.sh; not touching it"; exit 1; }

ours() {  # PID: running, and its command line names DIR
    local cmdline
    [[ -r "/proc/$1/cmdline" ]] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    [[ "$cmdline" == *"$DIR/"* ]]
}

stopped=()
stop_one() {  # NAME: SIGCONT + SIGTERM, wait up to 20 s, then SIGKILL
    local name=$1 pidfile="$DIR/$1/pid" pid deadline
    [[ -r "$pidfile" ]] || return 0
    pid=$(<"$pidfile")
    [[ -n "$pid" ]] && ours "$pid" || return 0
    [[ " ${stopped[*]} " == *" $pid:$name "* ]] || stopped+=("$pid:$name")
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while ours "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if ours "$pid"; then
        say "$name (pid $pid) ignored SIGTERM for 20s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
}
# The servers together, then ZooKeeper: a server shutting down still talks to it (its ephemeral
# nodes), and waits out its operation timeout if ZooKeeper went first.
for name in ch1 ch2; do
    pidfile="$DIR/$name/pid"
    if [[ -r "$pidfile" ]] && pid=$(<"$pidfile") && [[ -n "$pid" ]] && ours "$pid"; then
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        stopped+=("$pid:$name")
    fi
done
stop_one ch1
stop_one ch2
stop_one zk
((${#stopped[@]})) && say "stopped ${stopped[*]}" || say "nothing was running"

if ((KEEP)); then
    say "kept $DIR"
else
    rm -rf "$DIR"
    say "removed $DIR"
fi
