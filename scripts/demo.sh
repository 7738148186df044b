#!/usr/bin/env bash
# The main job, end to end, against a live lab (root): bring up a namespace lab (client -
# middlebox - a real Linux TCP server), open a connection with keepalive idle 1 s, interval
# 1 s, count 3 and watch its probes and answers on the wire as they happen (kaprobe watch,
# with the expectation checked as the flow goes); verify the
# capture with kaprobe; break the peer (blackhole) and let kaprobe give the verdict the
# socket options predict; tear the lab down. About 10 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --quiet
kaprobe=target/release/kaprobe
lab=scripts/lab.sh
name=demo$$
work=$(mktemp -d "${TMPDIR:-/tmp}/kaprobe-demo.XXXXXX")
watch_pid=""
client_pid=""

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then bold=$'\033[1m' off=$'\033[0m'; else bold="" off=""; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
step() {
    printf '%s$ %s%s\n' "$bold" "$*" "$off"
    "$@" || echo "(exit $?)"
}

finish() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z $watch_pid ]] || kill "$watch_pid" 2>/dev/null || true
    [[ -z $client_pid ]] || kill "$client_pid" 2>/dev/null || true
    if bash "$lab" list 2>/dev/null | awk '{ print $1 }' | grep -qx "$name"; then
        bash "$lab" down "$name" || rc=1
    fi
    rm -rf "$work"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "1. A lab: client - middlebox - server, each in its own network namespace"
step bash "$lab" up "$name" --owner $$
eval "$(bash "$lab" env "$name" | grep -E '^LAB_(STATE|S4|NS_C|IF_C)=')"

say "2. A connection with keepalive idle 1s, interval 1s, count 3; kaprobe watch on the client's wire, live"
expect=idle=1s,interval=1s,count=3,outcome=timed_out
id=$(bash "$lab" capture "$name" start "$work/demo.pcap")
echo "$ kaprobe watch -i $LAB_IF_C --lines --expect $expect"
ip netns exec "$LAB_NS_C" "$kaprobe" watch -i "$LAB_IF_C" --lines --expect "$expect" \
    > >(sed -u 's/^/   watch| /') 2>&1 &
watch_pid=$!
sleep 0.5 # the capture open before the connection
bash "$lab" client "$name" --idle 1 --intvl 1 --cnt 3 --send 100 --echo --timeout 30 \
    --status "$work/client.jsonl" >"$work/client.json" &
client_pid=$!
for _ in $(seq 250); do
    grep -q '"event":"exchanged"' "$work/client.jsonl" 2>/dev/null && break
    sleep 0.02
done
sleep 3.4 # three probes, each answered at once

say "3. kaprobe on the capture so far: every probe answered"
cp "$work/demo.pcap" "$work/healthy.pcap"
step "$kaprobe" verify "$work/healthy.pcap"

say "4. Break the peer: the server drops everything (a crashed host)"
step bash "$lab" fault "$name" blackhole
wait "$client_pid" || true
client_pid=""
bash "$lab" capture "$name" stop
# Ctrl-C for watch: it ends with its table and the expectation's verdict.
kill -INT "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=""
sleep 0.2 # the last lines through sed

say "5. The verdict: the socket options predicted it, kaprobe confirms it"
step "$kaprobe" verify --expect "$expect" "$work/demo.pcap"
echo
echo "What the client application saw (peer.py, epoll + SO_ERROR):"
cat "$work/client.json"

say "6. Tear down"
step bash "$lab" down "$name"
left=$(ip netns list | grep -c -- "-$name-" || true)
echo "namespaces of lab $name left: $left"
