#!/usr/bin/env bash
# scripts/stacks-table.sh — the README's table of TCP stacks, measured (root).
#
# For each lab stack (linux, gvisor, smoltcp, lwip, ns3):
#   - its answers: `kaprobe conform --json` against it as the lab's server;
#   - its own keepalive: `kaprobe verify --json` on its recordings in captures/
#     (scripts/record-captures.sh for Linux, scripts/record-stacks.sh for the others,
#     keepalive set to 1 s in both), the probe's options read by tshark.
# Prints the Markdown table; with --readme, also puts it into README.md between the
# `stacks-table` markers. Nothing is copied by hand: rerun it after re-recording.
#
#   sudo scripts/stacks-table.sh [--readme] [STACK...]
#
# Environment: KAPROBE (the kaprobe binary; default: built with cargo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[[ $(id -u) -eq 0 ]] || { echo "stacks-table.sh: needs root (network namespaces)" >&2; exit 2; }
readme=""
if [[ ${1:-} == --readme ]]; then readme=1; shift; fi
stacks=("$@")
((${#stacks[@]})) || stacks=(linux gvisor smoltcp lwip ns3)

if [[ -z ${KAPROBE:-} ]]; then
    cargo build --release --quiet
    KAPROBE=$ROOT/target/release/kaprobe
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaprobe-table.XXXXXX")
LAB=""
cleanup() {
    [[ -z $LAB ]] || bash scripts/lab.sh down "$LAB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# version STACK — what exactly ran
version() {
    case $1 in
    linux) echo "Linux $(uname -r | cut -d- -f1)" ;;
    gvisor) echo "gVisor (runsc $(runsc --version | awk 'NR == 1 { print $3 }'))" ;;
    smoltcp) echo "smoltcp $(awk '/^name = "smoltcp"/ { getline; gsub(/"/, "", $3); print $3 }' \
        scripts/lab/peers/smoltcp/Cargo.lock)" ;;
    lwip) echo "lwIP $(dpkg-query -W -f='${Version}' liblwip-dev | cut -d+ -f1)" ;;
    ns3) echo "ns-3 $(dpkg-query -W -f='${Version}' libns3-dev | cut -d- -f1)" ;;
    esac
}

# recordings STACK — its own keepalive: answered, then with the other side gone (none: the
# stack has no keepalive)
recordings() {
    case $1 in
    linux) echo "captures/linux_ka_answered_v4.pcap captures/linux_ka_blackhole_abort.pcap" ;;
    ns3) echo "none none" ;;
    *) echo "captures/${1}_ka_answered.pcap captures/${1}_ka_dead.pcap" ;;
    esac
}

for stack in "${stacks[@]}"; do
    echo "== $stack" >&2
    if ! LAB=$(bash scripts/lab.sh up "tbl$stack$$" --peer "$stack" --owner $$ 2>"$WORK/up.err" | tail -1) ||
        [[ -z $LAB ]]; then
        cat "$WORK/up.err" >&2
        echo "stacks-table.sh: could not bring up a lab with the $stack peer" >&2
        exit 1
    fi
    # Exit 1 is a result (the default style went unanswered: ns-3), not a failure.
    rc=0
    bash scripts/lab.sh exec "$LAB" c "$KAPROBE" conform 10.77.101.2:7077 --json >"$WORK/$stack.conform.jsonl" || rc=$?
    ((rc <= 1)) || { echo "stacks-table.sh: conform against $stack failed" >&2; exit 1; }
    bash scripts/lab.sh down "$LAB" >/dev/null 2>&1
    LAB=""
    version "$stack" >"$WORK/$stack.version"
    read -r answered dead <<<"$(recordings "$stack")"
    [[ $answered != none ]] || continue
    for f in "$answered" "$dead"; do
        [[ -f $f ]] || { echo "stacks-table.sh: $f is missing (record it first)" >&2; exit 1; }
    done
    # Exit 1 (a violation in the recording) is a result too; 2 is not.
    for which in answered dead; do
        f=$answered
        [[ $which == answered ]] || f=$dead
        rc=0
        "$KAPROBE" verify --json "$f" >"$WORK/$stack.$which.jsonl" || rc=$?
        ((rc <= 1)) || { echo "stacks-table.sh: verify $f failed" >&2; exit 1; }
    done
    # The first probe's TCP option kinds, as tshark decodes them.
    frame=$(grep -m1 '"kind":"keepalive_probe"' "$WORK/$stack.answered.jsonl" | sed 's/.*"frame":\([0-9]*\).*/\1/')
    tshark -n -r "$answered" -Y "frame.number == $frame" -T fields -e tcp.option_kind \
        >"$WORK/$stack.options" 2>/dev/null
done

python3 scripts/lib/stacks_table.py "$WORK" "${stacks[@]}" >"$WORK/table.md"
cat "$WORK/table.md"
if [[ -n $readme ]]; then
    python3 - "$WORK/table.md" README.md <<'PY'
import sys
table, readme = open(sys.argv[1]).read(), sys.argv[2]
text = open(readme).read()
begin, end = "<!-- stacks-table: begin -->\n", "<!-- stacks-table: end -->\n"
if begin not in text or end not in text:
    sys.exit(f"stacks-table.sh: {readme} has no {begin.strip()} … {end.strip()} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
with open(readme + ".new", "w") as f:
    f.write(head + begin + table + end + tail)
PY
    mv -f README.md.new README.md
    echo "README.md updated" >&2
fi
