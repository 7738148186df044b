#!/usr/bin/env bash
# scripts/bench.sh — throughput and memory benchmark of `kaprobe verify`.
#
# Builds release, generates a synthetic capture (examples/gen_bench_capture.rs) unless
# a current one is cached in target/bench/, then:
#   1. times `kaprobe verify -q --threads N FILE` (best of BENCH_REPEAT) for N in
#      BENCH_THREADS, then `--json > /dev/null` (all cores); reports wall time, CPU time,
#      packets/s, peak RSS and the speed-up over one thread;
#   2. checks kaprobe's packets, flows, keepalive flows and probe count (text and
#      JSON summaries) against what the generator wrote;
#   3. when tshark is installed, times `tshark -Y tcp.analysis.keep_alive` and kaprobe
#      on one smaller complete capture (see below) and prints both rates and the ratio;
#   4. memory: same flow count with 2x and 4x the rounds (packets), and 2x the flows,
#      to show peak RSS follows flows, not packets.
#
#   scripts/bench.sh            # full: 50000 flows x 20 rounds (~3.8M packets, 1.7 GB)
#   scripts/bench.sh --quick    # CI smoke: 5000 flows x 6 rounds
#   scripts/bench.sh --clean    # remove target/bench/ and exit
#
# Environment (defaults full / --quick):
#   BENCH_FLOWS (50000 / 5000)  BENCH_ROUNDS (20 / 6)  BENCH_SEED (1)
#   BENCH_REPEAT (5 / 1)        timed runs of `verify -q`; the best and the median are reported
#   BENCH_THREADS ($(nproc))     thread counts `verify -q` is timed with besides one
#   BENCH_MEM_FACTORS ("2 4")   round multipliers for the memory check ("" skips it)
#   BENCH_FLOW_FACTORS ("2")    flow multipliers for the memory check ("" skips it)
#   BENCH_TSHARK_FLOWS (2500 / 500)  flows of the tshark comparison capture; 0 skips tshark
#   BENCH_TSHARK_FULL (0)       1: also run tshark on the whole main capture (slow, GBs of RAM)
#   BENCH_DIR (target/bench)    where the main capture is cached; temporaries go in a
#                               subdirectory that is removed on exit
#
# Exit status: 0 when every count check holds, 1 when one does not, 2 on usage errors.
# Why not a prefix of the main capture for tshark: its first ~200k packets are the
# connection-setup burst (no flow has been idle 30 s yet, so no probes at all), and a
# slice from the middle shows each flow for the first time (neither tool has state,
# so probes go unrecognised). A complete capture with fewer flows has the same mix.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
NO_CACHE=0
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --no-cache) NO_CACHE=1 ;;
    --clean)
        rm -rf "${BENCH_DIR:-$ROOT/target/bench}"
        echo "removed ${BENCH_DIR:-$ROOT/target/bench}"
        exit 0
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown argument: $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

if ((QUICK)); then
    FLOWS=${BENCH_FLOWS:-5000}
    ROUNDS=${BENCH_ROUNDS:-6}
    REPEAT=${BENCH_REPEAT:-1}
    TSHARK_FLOWS=${BENCH_TSHARK_FLOWS:-500}
else
    FLOWS=${BENCH_FLOWS:-50000}
    ROUNDS=${BENCH_ROUNDS:-20}
    REPEAT=${BENCH_REPEAT:-5}
    TSHARK_FLOWS=${BENCH_TSHARK_FLOWS:-2500}
fi
SEED=${BENCH_SEED:-1}
MEM_FACTORS=${BENCH_MEM_FACTORS-2 4}
FLOW_FACTORS=${BENCH_FLOW_FACTORS-2}
TSHARK_FULL=${BENCH_TSHARK_FULL:-0}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
for v in FLOWS ROUNDS REPEAT SEED TSHARK_FLOWS TSHARK_FULL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || {
        echo "bench.sh: $v must be a non-negative integer, got '${!v}'" >&2
        exit 2
    }
done
((REPEAT >= 1)) || REPEAT=1

KAPROBE=$ROOT/target/release/kaprobe
GEN=$ROOT/target/release/examples/gen_bench_capture
GNU_TIME=
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then
    GNU_TIME=/usr/bin/time
fi

mkdir -p "$BENCH_DIR"
TMP=$(mktemp -d "$BENCH_DIR/tmp.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILED=0
say() { printf '\n== %s\n' "$*"; }
fail() {
    printf 'MISMATCH: %s\n' "$*"
    FAILED=1
}

# rate PACKETS SECONDS -> packets/s; human_rate RATE -> "1.23 M"
rate() { awk -v p="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 1e-9; printf "%.0f", p / s }'; }
human_rate() { awk -v r="$1" 'BEGIN { if (r >= 1e6) printf "%.2f M", r / 1e6; else printf "%.1f k", r / 1e3 }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.1f MiB", k / 1024 }'; }

# timed OUT CMD... : runs CMD with stdout to OUT; sets T_WALL (s), T_CPU (s, user+sys),
# T_RSS (kB, peak), T_RC (exit status). Wall time is measured here, to the nanosecond.
# stderr goes to $TIMED_ERR when set.
timed() {
    local out=$1 tf=$TMP/time.txt t0 t1
    shift
    T_RC=0
    # fd 3: where the command's stderr goes (not /dev/stderr: reopening it truncates a log file).
    if [[ -n ${TIMED_ERR:-} ]]; then exec 3>"$TIMED_ERR"; else exec 3>&2; fi
    t0=$(date +%s%N)
    if [[ -n $GNU_TIME ]]; then
        "$GNU_TIME" -v -o "$tf" "$@" >"$out" 2>&3 || T_RC=$?
    else
        "$@" >"$out" 2>&3 || T_RC=$?
    fi
    t1=$(date +%s%N)
    exec 3>&-
    T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    T_CPU=n/a
    T_RSS=
    if [[ -n $GNU_TIME ]]; then
        T_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
        T_CPU=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$tf")
    fi
}

# gen_field FILE KEY: a key=value field of the generator's summary line.
gen_field() { grep -o "\\b$2=[^ ]*" "$1" | head -n1 | cut -d= -f2; }

# generate FLOWS ROUNDS OUT: writes OUT and OUT.gen (the generator's summary line).
generate() {
    local flows=$1 rounds=$2 out=$3
    "$GEN" --flows "$flows" --rounds "$rounds" --seed "$SEED" "$out.part" >"$out.gen.part"
    mv "$out.part" "$out"
    sed 's/\.part / /' "$out.gen.part" >"$out.gen"
    rm -f "$out.gen.part"
}

# cached_as_read FILE: puts FILE in the page cache the way reading it from disk does,
# so the timed runs measure the analysis, not the disk, nor how the file was written.
# Read back from disk (readahead), the file sits in large folios that a map takes 2 MiB
# at a time: 0.01-0.04 s of kernel time for the main capture. As the generator's writes
# left it, in small pages, mapping and unmapping them cost kaprobe 0.15-0.4 s, a fifth
# to a third of the run. A capture copied from another machine is in the first state;
# one just written here by tcpdump is in the second until the kernel drops it.
cached_as_read() {
    sync "$1" 2>/dev/null || sync
    dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
    cat "$1" >/dev/null
}

# summary_of OUT: "packets flows keepalive probes violations" from `verify -q` text output.
summary_of() {
    sed -nE 's/^summary: .* ([0-9]+) packets, ([0-9]+) flows, ([0-9]+) with keepalive, ([0-9]+) probes, ([0-9]+) violations.*/\1 \2 \3 \4 \5/p' "$1"
}

# json_field FILE KEY: a numeric field of the JSON summary line (empty when absent).
json_field() { grep -o "\"$2\":[0-9.e+-]*" "$1" | head -n1 | cut -d: -f2; }

# check WHAT EXPECTED ACTUAL
check() {
    if [[ -z $3 ]]; then
        printf '  %-24s expected %-10s kaprobe: (not reported)\n' "$1" "$2"
    elif [[ $2 == "$3" ]]; then
        printf '  %-24s %-10s ok\n' "$1" "$3"
    else
        printf '  %-24s expected %-10s kaprobe %-10s\n' "$1" "$2" "$3"
        fail "$1: generator wrote $2, kaprobe reports $3"
    fi
}

START_TIME=$SECONDS
say "build (release)"
cargo build --release --quiet --bin kaprobe --example gen_bench_capture
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
[[ -n $GNU_TIME ]] || echo "note: GNU time (/usr/bin/time, apt package 'time') not found: no peak RSS or CPU time"

# ---------------------------------------------------------------- main capture
if ((NO_CACHE)); then
    CAP=$TMP/bench-f$FLOWS-r$ROUNDS-s$SEED.pcap
else
    CAP=$BENCH_DIR/bench-f$FLOWS-r$ROUNDS-s$SEED.pcap
fi
say "capture: $FLOWS flows x $ROUNDS rounds"
if [[ -f $CAP && -f $CAP.gen && $CAP.gen -nt $GEN ]]; then
    echo "reusing $CAP (generated by the current generator build; --clean to remove)"
else
    rm -f "$CAP" "$CAP.gen"
    t0=$(date +%s%N)
    generate "$FLOWS" "$ROUNDS" "$CAP"
    echo "generated in $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f s", (b - a) / 1e9 }')"
fi
cat "$CAP.gen"
PACKETS=$(gen_field "$CAP.gen" packets)
GEN_FLOWS=$(gen_field "$CAP.gen" flows)
PROBES=$(gen_field "$CAP.gen" probes)
KA_FLOWS=$(gen_field "$CAP.gen" keepalive_flows)
ZW=$(gen_field "$CAP.gen" zero_window_probes)
RETX=$(gen_field "$CAP.gen" retransmissions)
BYTES=$(gen_field "$CAP.gen" bytes)
echo "file: $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN { printf "%.2f GiB", b / 2^30 }')), $PACKETS packets, $GEN_FLOWS flows, $PROBES keepalive probes expected"
cached_as_read "$CAP"

# ---------------------------------------------------------------- kaprobe -q
# bench_q THREADS: best of REPEAT runs of `verify -q --threads THREADS`; sets BEST_WALL,
# BEST_CPU, BEST_RSS, MEDIAN_WALL and Q_RC, and leaves the last run's output in $TMP/q.out.
bench_q() {
    local threads=$1 i
    say "kaprobe verify -q --threads $threads (best of $REPEAT)"
    BEST_WALL='' BEST_CPU='' BEST_RSS='' WALLS=()
    for ((i = 1; i <= REPEAT; i++)); do
        timed "$TMP/q.out" "$KAPROBE" verify -q --threads "$threads" "$CAP"
        WALLS+=("$T_WALL")
        if ((T_RC > 1)); then
            cat "$TMP/q.out"
            fail "kaprobe verify -q --threads $threads exited $T_RC"
            break
        fi
        printf '  run %d: %s s wall, %s s CPU, peak RSS %s, %s packets/s\n' "$i" "$T_WALL" "$T_CPU" \
            "$(mib "$T_RSS")" "$(human_rate "$(rate "$PACKETS" "$T_WALL")")"
        if [[ -z $BEST_WALL ]] || awk -v a="$T_WALL" -v b="$BEST_WALL" 'BEGIN { exit !(a < b) }'; then
            BEST_WALL=$T_WALL BEST_CPU=$T_CPU BEST_RSS=$T_RSS
        fi
    done
    Q_RC=$T_RC
    MEDIAN_WALL=$(printf '%s\n' "${WALLS[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
}

# Thread counts to time: one (always first: the base of the speed-ups, and of the memory
# rows below), then one per core, or BENCH_THREADS (e.g. "2 4 8").
THREADS="1"
for n in ${BENCH_THREADS:-$(nproc)}; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || {
        echo "bench.sh: BENCH_THREADS must list positive integers, got '$n'" >&2
        exit 2
    }
    ((n == 1)) || THREADS+=" $n"
done
THREAD_LINES=()
ONE_WALL='' ONE_RSS=''
for n in $THREADS; do
    bench_q "$n"
    [[ -n $BEST_WALL ]] || {
        echo "bench.sh: no timed run of verify -q --threads $n completed" >&2
        exit 1
    }
    ((n > 1)) || ONE_WALL=$BEST_WALL ONE_RSS=$BEST_RSS
    THREAD_LINES+=("$(printf '%2s threads: best %s s, median %s s, %s packets/s, %.2fx one thread, peak RSS %s' "$n" \
        "$BEST_WALL" "$MEDIAN_WALL" "$(human_rate "$(rate "$PACKETS" "$BEST_WALL")")" \
        "$(awk -v a="$ONE_WALL" -v b="$BEST_WALL" 'BEGIN { print (b > 0) ? a / b : 0 }')" "$(mib "$BEST_RSS")")")
done
grep -v '^$' "$TMP/q.out" | sed 's/^/  | /'
((Q_RC == 0)) || echo "  (exit status $Q_RC: kaprobe reported violations or failed expectations)"
# The rate the tshark comparison quotes: on the last thread count timed.
KA_RATE=$(rate "$PACKETS" "${BEST_WALL:-0}")
RSS_1X=$ONE_RSS

say "check: kaprobe -q summary against the generator"
read -r S_PACKETS S_FLOWS S_KA S_PROBES S_VIOL <<<"$(summary_of "$TMP/q.out") " || true
if [[ -z ${S_PACKETS:-} ]]; then
    fail "could not parse the 'summary:' line of kaprobe verify -q"
else
    check packets "$PACKETS" "$S_PACKETS"
    check flows "$GEN_FLOWS" "$S_FLOWS"
    check "keepalive flows" "$KA_FLOWS" "$S_KA"
    check "keepalive probes" "$PROBES" "$S_PROBES"
    check violations 0 "$S_VIOL"
fi

# ---------------------------------------------------------------- kaprobe --json
say "kaprobe verify --json > /dev/null (default threads: one per core from 384 MiB)"
timed /dev/null "$KAPROBE" verify --json "$CAP"
J_WALL=$T_WALL J_RSS=$T_RSS
printf '  %s s wall, %s s CPU, peak RSS %s, %s packets/s (exit %s)\n' "$T_WALL" "$T_CPU" "$(mib "$T_RSS")" \
    "$(human_rate "$(rate "$PACKETS" "$T_WALL")")" "$T_RC"
((T_RC <= 1)) || fail "kaprobe verify --json exited $T_RC"
# The counts in the JSON summary (an untimed second run; only the last line is kept).
{ "$KAPROBE" verify --json "$CAP" || true; } | tail -n 1 >"$TMP/json.summary"
say "check: kaprobe --json summary against the generator"
check packets "$PACKETS" "$(json_field "$TMP/json.summary" packets)"
check flows "$GEN_FLOWS" "$(json_field "$TMP/json.summary" flows)"
check "keepalive flows" "$KA_FLOWS" "$(json_field "$TMP/json.summary" keepalive_flows)"
check "keepalive probes" "$PROBES" "$(json_field "$TMP/json.summary" probes)"
check "zero-window probes" "$ZW" "$(json_field "$TMP/json.summary" zero_window_probes)"
check "1-byte retransmissions" "$RETX" "$(json_field "$TMP/json.summary" retransmissions)"
check violations 0 "$(json_field "$TMP/json.summary" violations)"

# ---------------------------------------------------------------- tshark
TS_LINE="tshark: skipped"
if ! command -v tshark >/dev/null 2>&1; then
    TS_LINE="tshark: not installed, skipped"
elif ((TSHARK_FLOWS == 0)); then
    TS_LINE="tshark: skipped (BENCH_TSHARK_FLOWS=0)"
else
    TCAP=$TMP/tshark-f$TSHARK_FLOWS-r$ROUNDS.pcap
    say "tshark comparison: a complete capture of $TSHARK_FLOWS flows x $ROUNDS rounds"
    echo "  (not a prefix of the main capture: its first ~200k packets are the connection-setup"
    echo "   burst, with no keepalive probe at all; see the comment at the top of this script)"
    generate "$TSHARK_FLOWS" "$ROUNDS" "$TCAP"
    T_PACKETS=$(gen_field "$TCAP.gen" packets)
    T_PROBES=$(gen_field "$TCAP.gen" probes)
    T_ZW=$(gen_field "$TCAP.gen" zero_window_probes)
    T_RETX=$(gen_field "$TCAP.gen" retransmissions)
    echo "  $T_PACKETS packets, $T_PROBES keepalive probes, $T_ZW zero-window probes, $T_RETX 1-byte retransmissions"
    cached_as_read "$TCAP"
    TIMED_ERR=$TMP/tshark.err timed "$TMP/tshark.out" tshark -n -r "$TCAP" -Y tcp.analysis.keep_alive
    TS_WALL=$T_WALL TS_RSS=$T_RSS TS_COUNT=$(wc -l <"$TMP/tshark.out")
    if ((T_RC != 0)); then
        sed 's/^/  tshark: /' "$TMP/tshark.err"
        fail "tshark exited $T_RC"
    fi
    timed "$TMP/kq.out" "$KAPROBE" verify -q "$TCAP"
    KS_WALL=$T_WALL KS_RSS=$T_RSS
    read -r _ _ _ KS_PROBES _ <<<"$(summary_of "$TMP/kq.out") " || true
    TS_RATE=$(rate "$T_PACKETS" "$TS_WALL")
    KS_RATE=$(rate "$T_PACKETS" "$KS_WALL")
    printf '  tshark -Y tcp.analysis.keep_alive: %s s, %s packets/s, peak RSS %s, %s packets matched\n' \
        "$TS_WALL" "$(human_rate "$TS_RATE")" "$(mib "$TS_RSS")" "$TS_COUNT"
    printf '  kaprobe verify -q:                 %s s, %s packets/s, peak RSS %s, %s probes\n' \
        "$KS_WALL" "$(human_rate "$KS_RATE")" "$(mib "$KS_RSS")" "${KS_PROBES:-?}"
    RATIO_SAME=$(awk -v a="$KS_RATE" -v b="$TS_RATE" 'BEGIN { printf "%.1f", a / b }')
    RATIO_FULL=$(awk -v a="$KA_RATE" -v b="$TS_RATE" 'BEGIN { printf "%.1f", a / b }')
    echo "  ratio kaprobe/tshark: ${RATIO_SAME}x on this capture; ${RATIO_FULL}x using kaprobe's rate on the main capture ($FLOWS flows)"
    # Wireshark's rule also flags zero-window probes and 1-byte retransmissions.
    T_WS=$((T_PROBES + T_ZW + T_RETX))
    if [[ $TS_COUNT == "$T_WS" ]]; then
        echo "  tshark's keep_alive count = probes + zero-window probes + 1-byte retransmissions = $T_WS: as expected"
    else
        echo "  note: tshark flagged $TS_COUNT, expected probes + zero-window probes + 1-byte retransmissions = $T_WS"
    fi
    [[ ${KS_PROBES:-} == "$T_PROBES" ]] || fail "tshark capture: generator wrote $T_PROBES probes, kaprobe reports ${KS_PROBES:-?}"
    ((TSHARK_FULL)) || echo "  tshark on all $PACKETS packets of the main capture would take about $(awk -v p="$PACKETS" -v r="$TS_RATE" 'BEGIN { printf "%.0f", p / r }') s (BENCH_TSHARK_FULL=1 runs it)"
    TS_LINE="tshark: $(human_rate "$TS_RATE") packets/s vs kaprobe $(human_rate "$KS_RATE") packets/s on $T_PACKETS packets (${RATIO_SAME}x; ${RATIO_FULL}x vs the main capture's rate)"
    rm -f "$TCAP" "$TCAP.gen"
    if ((TSHARK_FULL)); then
        say "tshark on the whole main capture ($PACKETS packets)"
        TIMED_ERR=$TMP/tshark.err timed "$TMP/tshark.out" tshark -n -r "$CAP" -Y tcp.analysis.keep_alive
        printf '  %s s, %s packets/s, peak RSS %s, %s packets matched; kaprobe %.1fx faster\n' "$T_WALL" \
            "$(human_rate "$(rate "$PACKETS" "$T_WALL")")" "$(mib "$T_RSS")" "$(wc -l <"$TMP/tshark.out")" \
            "$(awk -v a="$T_WALL" -v b="$BEST_WALL" 'BEGIN { print a / b }')"
        rm -f "$TMP/tshark.out"
    fi
fi

# ---------------------------------------------------------------- memory
MEM_ROWS=()
mem_row() { # LABEL FLOWS ROUNDS PACKETS WALL RSS
    MEM_ROWS+=("$(printf '  %-10s %8s flows %4s rounds %10s packets %8s s %12s packets/s  peak RSS %10s  (%s per flow)' \
        "$1" "$2" "$3" "$4" "$5" "$(human_rate "$(rate "$4" "$5")")" "$(mib "$6")" \
        "$(awk -v k="$6" -v f="$2" 'BEGIN { if (k == "") print "n/a"; else printf "%.2f KiB", k / f }')")")
}
mem_row "1x" "$FLOWS" "$ROUNDS" "$PACKETS" "$ONE_WALL" "$RSS_1X"
mem_run() { # LABEL FLOWS ROUNDS
    local label=$1 flows=$2 rounds=$3 cap=$TMP/mem.pcap p n probes
    generate "$flows" "$rounds" "$cap"
    cached_as_read "$cap"
    p=$(gen_field "$cap.gen" packets)
    n=$(gen_field "$cap.gen" probes)
    timed "$TMP/mem.out" "$KAPROBE" verify -q --threads 1 "$cap"
    read -r _ _ _ probes _ <<<"$(summary_of "$TMP/mem.out") " || true
    [[ ${probes:-} == "$n" ]] || fail "$label capture: generator wrote $n probes, kaprobe reports ${probes:-?}"
    mem_row "$label" "$flows" "$rounds" "$p" "$T_WALL" "$T_RSS"
    printf '%s\n' "${MEM_ROWS[-1]}"
    rm -f "$cap" "$cap.gen"
}
if [[ -n $MEM_FACTORS$FLOW_FACTORS ]]; then
    say "memory: peak RSS of kaprobe verify -q --threads 1 as packets and flows grow"
    printf '%s\n' "${MEM_ROWS[0]}"
    for f in $MEM_FACTORS; do mem_run "${f}x rounds" "$FLOWS" $((ROUNDS * f)); done
    for f in $FLOW_FACTORS; do mem_run "${f}x flows" $((FLOWS * f)) "$ROUNDS"; done
fi

# ---------------------------------------------------------------- summary
say "summary"
echo "capture: $PACKETS packets, $GEN_FLOWS flows, $BYTES bytes, $PROBES probes expected"
echo "kaprobe verify -q, best and median of $REPEAT:"
printf '%s\n' "${THREAD_LINES[@]}"
echo "kaprobe verify --json: ${J_WALL} s wall, $(human_rate "$(rate "$PACKETS" "$J_WALL")") packets/s, peak RSS $(mib "$J_RSS")"
echo "$TS_LINE"
printf '%s\n' "${MEM_ROWS[@]}"
echo "bench.sh took $((SECONDS - START_TIME)) s"
if ((FAILED)); then
    echo "RESULT: count mismatches (see MISMATCH lines above)"
    exit 1
fi
echo "RESULT: all counts match"
