#!/usr/bin/env bash
# scripts/record-stacks.sh — record other TCP stacks' own keepalive into captures/ (root).
#
# For each userspace stack of the lab as the server (gVisor: peer.py under runsc; smoltcp
# and lwIP: scripts/lab/peers/), with its keepalive at 1 s (gVisor: --idle 1 --intvl 1
# --cnt 3; smoltcp: one timer, --keepalive 1000 --timeout 3500; lwIP: --idle 1000 --intvl
# 1000 --cnt 3), a peer.py client (kernel keepalive off) sends 100 bytes, has them echoed,
# and then:
#   <stack>_ka_answered.pcap  stays connected: the client's kernel answers every probe;
#                             it closes after 4.5 s. Captured on the client's veth.
#   <stack>_ka_dead.pcap      the middlebox drops everything (loss 100 %) 0.5 s after the
#                             exchange: the stack probes until it gives up. Captured on the
#                             middlebox's server-side veth, where the probes still arrive.
#                             gVisor gives up without a RST: 7 s after the fault a short
#                             connection from the middlebox shows the capture went on.
#                             (the loss is on forwarded packets only)
# Each file is checked with kaprobe verify (the probes classified, the stack's idle,
# interval and count inferred) before it replaces the one in captures/.
#
#   sudo scripts/record-stacks.sh            # every stack
#   sudo scripts/record-stacks.sh lwip       # one
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${KAPROBE_CAPTURES:-$ROOT/captures}
[[ $(id -u) -eq 0 ]] || { echo "record-stacks.sh: needs root (network namespaces)" >&2; exit 2; }
cargo build --quiet
KAPROBE=$ROOT/target/debug/kaprobe
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaprobe-stacks.XXXXXX")
LAB=""
cleanup() {
    [[ -z $LAB ]] || bash scripts/lab.sh down "$LAB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

keepalive_args() {
    case $1 in
    gvisor) echo "--idle 1 --intvl 1 --cnt 3" ;;
    smoltcp) echo "--keepalive 1000 --timeout 3500" ;;
    lwip) echo "--idle 1000 --intvl 1000 --cnt 3" ;;
    *) echo "record-stacks.sh: unknown stack $1" >&2; exit 2 ;;
    esac
}

# check FILE EXPECT — kaprobe verify must find what EXPECT (verify --expect syntax) says
check() {
    if ! "$KAPROBE" verify -q --expect "$2" "$1" >"$WORK/check.txt" 2>&1; then
        cat "$WORK/check.txt" >&2
        "$KAPROBE" verify "$1" >&2 || true
        echo "record-stacks.sh: ${1##*/} is not what it should be ($2)" >&2
        exit 1
    fi
}

record() {
    local stack=$1 ka
    ka=$(keepalive_args "$stack")
    LAB=$(bash scripts/lab.sh up "rs$stack" --peer "$stack" --owner $$ 2>/dev/null | tail -1)
    # shellcheck disable=SC2086  # the keepalive options are words
    bash scripts/lab.sh server "$LAB" $ka >/dev/null

    echo "== $stack: answered"
    bash scripts/lab.sh capture "$LAB" start "$WORK/answered.pcap" >/dev/null
    bash scripts/lab.sh client "$LAB" --send 100 --echo --close-after 4.5 --timeout 10 >/dev/null
    bash scripts/lab.sh capture "$LAB" stop >/dev/null

    echo "== $stack: dead (the middlebox drops everything after the exchange)"
    bash scripts/lab.sh capture "$LAB" start "$WORK/dead.pcap" --at ms >/dev/null
    bash scripts/lab.sh client "$LAB" --send 100 --echo --timeout 14 >/dev/null 2>&1 &
    local client=$!
    sleep 0.5
    bash scripts/lab.sh fault "$LAB" loss 100% >/dev/null
    if [[ $stack == gvisor ]]; then
        sleep 7
        # shellcheck disable=SC2046  # KEY=VALUE words
        local $(bash scripts/lab.sh env "$LAB" | grep -E '^LAB_S4=')
        bash scripts/lab.sh exec "$LAB" m python3 scripts/lab/peer.py client --addr "$LAB_S4" \
            --port 7077 --send 10 --echo --close-after 0.2 --timeout 3 >/dev/null
        sleep 1
    else
        sleep 8
    fi
    bash scripts/lab.sh capture "$LAB" stop >/dev/null
    wait "$client" || true
    bash scripts/lab.sh down "$LAB" >/dev/null 2>&1
    LAB=""

    case $stack in
    gvisor)
        check "$WORK/answered.pcap" "idle=1s,outcome=closed"
        check "$WORK/dead.pcap" "idle=1s,interval=1s,count=3,outcome=timed_out"
        ;;
    smoltcp)
        check "$WORK/answered.pcap" "idle=1s,outcome=closed"
        check "$WORK/dead.pcap" "idle=1s,interval=1s,count=3,outcome=timed_out"
        ;;
    lwip)
        # lwIP's slow timer ticks every 500 ms: a 1 s idle comes out as 1.5 s.
        check "$WORK/answered.pcap" "outcome=closed"
        check "$WORK/dead.pcap" "interval=1s,count=3,outcome=timed_out"
        ;;
    esac
    mv -f "$WORK/answered.pcap" "$OUT/${stack}_ka_answered.pcap"
    mv -f "$WORK/dead.pcap" "$OUT/${stack}_ka_dead.pcap"
    echo "   -> captures/${stack}_ka_answered.pcap, captures/${stack}_ka_dead.pcap"
}

stacks=("$@")
((${#stacks[@]})) || stacks=(gvisor smoltcp lwip)
for s in "${stacks[@]}"; do
    record "$s"
done
