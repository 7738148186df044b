#!/usr/bin/env bash
# scripts/bench-watch.sh — the rate `kaprobe watch -i` sustains (root: it builds a lab).
#
# Replays the bench's 5,000-flow capture (scripts/bench.sh's generator, 137,834
# packets) with tcpreplay out of the lab client's interface, as fast as tcpreplay
# goes (or at --pps N), while `kaprobe watch -i` captures it on the middlebox's
# side of the link, and reports the rate sent and what watch saw and dropped.
# Nothing leaves the lab's namespaces: the middlebox has no route out. tcpreplay
# cannot send the capture's 1,694 frames that are larger than the veth's MTU.
#
#   scripts/bench-watch.sh             # --topspeed, JSON output to /dev/null
#   scripts/bench-watch.sh --pps 100000
#
# Exit status: 0 when watch dropped nothing, 1 when it did, 2 on usage errors.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RATE=(--topspeed)
case ${1:-} in
--pps) RATE=("--pps=${2:?--pps N}") ;;
"") ;;
*) echo "usage: $0 [--pps N]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "bench-watch: needs root (it builds a lab)" >&2; exit 2; }
command -v tcpreplay >/dev/null || apt-get install -y -qq tcpreplay >/dev/null
cargo build --release --quiet --bin kaprobe --example gen_bench_capture
CAP=target/bench/bench-f5000-r6-s1.pcap
mkdir -p target/bench
[ -s "$CAP" ] || target/release/examples/gen_bench_capture --flows 5000 --rounds 6 --seed 1 "$CAP"

LAB=bw$$
trap 'scripts/lab.sh down "$LAB" >/dev/null 2>&1 || true' EXIT
scripts/lab.sh up "$LAB" --owner $$ >/dev/null 2>&1
OUT=$(mktemp)
scripts/lab.sh exec "$LAB" m target/release/kaprobe watch -i veth-mc --json --duration 15 >"$OUT" &
WATCH=$!
sleep 2
SENT=$(scripts/lab.sh exec "$LAB" c tcpreplay -q -i veth-c "${RATE[@]}" "$CAP" 2>&1)
wait "$WATCH" || true
echo "$SENT" | grep -E "Actual|Rated|Failed" | sed 's/^[[:space:]]*/tcpreplay: /'
tail -1 "$OUT" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
seen, kd, ifd, probes = d["packets"], d["kernel_dropped"], d["interface_dropped"], d["probes"]
print(f"watch: {seen} packets seen, {kd} dropped (buffer), {ifd} (interface), {probes} probes")
sys.exit(1 if kd + ifd else 0)'
