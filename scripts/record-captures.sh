#!/usr/bin/env bash
# scripts/record-captures.sh — record real Linux TCP keepalive captures into captures/.
#
# Every scenario runs in its own fresh lab (scripts/lib/lab.sh: two namespaces joined by a
# veth, or client - middlebox - server for the middlebox, delay and outage scenarios), talks
# only between those namespaces (10.77.x.0/24, fd77:0:0:x::/64), is captured with tcpdump
# (--immediate-mode -s 200 -U), checked, and only then moved into captures/ (overwriting).
# A scenario that does not produce what it should makes the script exit non-zero.
#
#   sudo scripts/record-captures.sh              # all scenarios
#   sudo scripts/record-captures.sh blackhole_abort   # only some (see --list)
#   sudo scripts/record-captures.sh --cleanup    # remove labs left by killed runs
#
# Environment: KAPROBE_CAPTURES (output directory, default <repo>/captures), PYTHON,
# KAPROBE (the kaprobe binary for the scenarios it drives; default: built with cargo).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${KAPROBE_CAPTURES:-$ROOT/captures}
PEER=$HERE/lab/peer.py
PYTHON=${PYTHON:-python3}
PORT=7077  # no Wireshark dissector on 7077 (7000 is Gryphon)
# shellcheck source=lib/lab.sh
source "$HERE/lib/lab.sh"

SCENARIOS=(answered_v4 answered_v6 blackhole_abort reboot_rst server_sll2 nots_nosack
    retrans_1byte zero_window many_flows mixed_linktypes
    middlebox_idle_drop middlebox_idle_alive middlebox_idle_reset delay_50ms outage_recovered
    windows_style_probe_dsack snaplen_54 late_answers mid_session)

say() { printf '==> %s\n' "$*" >&2; }
fail() {
    printf 'record-captures: FAILED: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    printf 'scenarios: %s\n' "${SCENARIOS[*]}"
}

# --------------------------------------------------------------------------- helpers

# srv_start NAME NS ARGS... — start peer.py server in NS, wait until it listens.
srv_start() {
    local name=$1 ns=$2
    shift 2
    SRV_ST=$WORK/$name.server.jsonl
    lab_spawn "$ns" "$WORK/$name.server.out" "$WORK/$name.server.err" \
        "$PYTHON" "$PEER" server --port "$PORT" --status "$SRV_ST" --lifetime 40 "$@"
    SRV_PID=$LAB_SPAWN_PID
    lab_wait_grep "$SRV_ST" '"event":"listening"' 10 || {
        cat "$WORK/$name.server.err" >&2
        fail "$name: server did not start"
    }
}

# cli_start NAME NS ARGS... — start peer.py client in NS (background), output to CLI_OUT.
cli_start() {
    local name=$1 ns=$2
    shift 2
    CLI_ST=$WORK/$name.client.jsonl
    CLI_OUT=$WORK/$name.client.json
    lab_spawn "$ns" "$CLI_OUT" "$WORK/$name.client.err" \
        "$PYTHON" "$PEER" client --port "$PORT" --status "$CLI_ST" "$@"
    CLI_PID=$LAB_SPAWN_PID
}

cli_wait() {
    local name=$1 rc=0
    lab_wait_pid "$CLI_PID" "${2:-40}" || rc=$?
    if ((rc != 0)) || [[ ! -s $CLI_OUT ]]; then
        cat "$WORK/$name.client.err" >&2
        fail "$name: client failed (status $rc)"
    fi
    say "$name: client reported $(cut -c1-240 "$CLI_OUT")"
}

# srv_stop — let the server end by itself (short grace), else SIGTERM it.
srv_stop() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.02
    done
    kill -TERM "$SRV_PID" 2>/dev/null || true
    lab_wait_pid "$SRV_PID" 10 || true
}

wait_event() { # wait_event FILE EVENT [TIMEOUT]
    lab_wait_grep "$1" "\"event\":\"$2\"" "${3:-10}" || fail "timed out waiting for '$2' in ${1##*/}"
}

json_field() { # json_field FILE KEY — top-level string/number field of a one-line JSON object
    "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"
}

# classify FILE — a small stateful classifier (the reference the README's expectations are
# written against). Prints one line per interesting segment:
#   frame <tab> c>s|s>c <tab> kind <tab> seq <tab> ack <tab> len
# and at the end "count <tab> dir:kind <tab> N" lines. "c" is the side that sent the SYN.
classify() {
    tshark -r "$1" -T fields -E separator=/t -E occurrence=f \
        -e frame.number -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport \
        -e tcp.seq_raw -e tcp.ack_raw -e tcp.len -e tcp.flags.syn -e tcp.flags.ack \
        -e tcp.flags.fin -e tcp.flags.reset -e tcp.window_size_value 'tcp' 2>/dev/null |
        awk -F'\t' '
        function m32(x) { x = x % 4294967296; if (x < 0) x += 4294967296; return x }
        function ge(a, b) { return m32(a - b) < 2147483648 }
        function emit(kind) { printf "%s\t%s\t%s\t%.0f\t%.0f\t%d\n", fr, lbl, kind, seq, ack, len; n[lbl ":" kind]++ }
        {
            fr = $1; src = ($2 != "" ? $2 : $3); dst = ($5 != "" ? $5 : $6)
            d = src "/" $4 ">" dst "/" $7; r = dst "/" $7 ">" src "/" $4
            seq = $8 + 0; ack = $9 + 0; len = $10 + 0
            syn = ($11 == "1"); fack = ($12 == "1"); fin = ($13 == "1"); rst = ($14 == "1"); win = $15 + 0
            if (syn && !fack) { client[d] = 1; client[r] = 0 }
            lbl = (d in client && client[d]) ? "c>s" : "s>c"
            if (syn) {
                nxt[d] = m32(seq + 1); win_[d] = win
                if (fack) hiack[d] = ack
                next
            }
            if (rst) {
                if (probe[r] != "" && seq == probe_ack[r]) emit("keepalive_rst")
                else if (unanswered[d] > 0) emit("keepalive_abort")
                else emit("rst")
                probe[r] = ""; next
            }
            kind = ""
            if (len <= 1 && !fin && (d in nxt) && seq == m32(nxt[d] - 1)) {
                if ((r in hiack) && ge(hiack[r], nxt[d])) {
                    if (win_[r] == 0) { kind = "zero_window_probe"; zprobe[d] = 1 }
                    else { kind = "keepalive_probe"; probe[d] = fr; probe_ack[d] = ack; unanswered[d]++ }
                } else kind = "retransmission"
            } else if (len > 0 && (d in nxt) && !ge(seq, nxt[d])) {
                kind = "retransmission"
            } else if (len == 0 && !fin && probe[r] != "" && ack == nxt[r]) {
                kind = "keepalive_ack"; probe[r] = ""; unanswered[r] = 0
            } else if (len == 0 && !fin && zprobe[r] && ack == nxt[r]) {
                kind = (win == 0 ? "zero_window_ack" : "window_open"); zprobe[r] = (win == 0)
            } else if (fin) kind = "fin"
            if (kind != "") emit(kind)
            if (kind != "keepalive_probe" && kind != "keepalive_ack" && (len > 0 || fin)) probe[d] = ""
            e = m32(seq + len + fin)
            if (!(d in nxt) || ge(e, nxt[d])) nxt[d] = e
            if (fack && (!(d in hiack) || ge(ack, hiack[d]))) hiack[d] = ack
            win_[d] = win
        }
        END { for (k in n) printf "count\t%s\t%d\n", k, n[k] }'
}

# count FILE DIR:KIND — from the classifier
count() {
    awk -F'\t' -v k="$2" '$1 == "count" && $2 == k { c = $3 } END { print c + 0 }' "$1.classified"
}

# tshark_count FILE FILTER
tshark_count() {
    tshark -r "$1" -Y "$2" 2>/dev/null | wc -l
}

# expect NAME WHAT ACTUAL OP WANT   (OP: -eq -ge -le ...)
expect() {
    local name=$1 what=$2 actual=$3 op=$4 want=$5
    if ! test "$actual" "$op" "$want"; then
        fail "$name: expected $what $op $want, got $actual"
    fi
}

# checked FILE NAME — classify a recorded file, keep the result next to it in WORK.
analyse() {
    classify "$1" >"$1.classified"
}

# install FILE... — move checked files from WORK into OUT.
install_files() {
    local f
    for f in "$@"; do
        mv -f "$WORK/$f" "$OUT/$f"
        say "wrote $OUT/$f ($(stat -c %s "$OUT/$f") bytes)"
    done
}

record_result() { # record_result FILE — remember what the client app saw
    printf '{"file":"%s","client":%s}\n' "$1" "$(cat "$CLI_OUT")" >>"$WORK/app-results.jsonl"
}

expect_client() { # expect_client NAME OUTCOME SO_ERROR [EPOLL]
    local o e m
    o=$(json_field "$CLI_OUT" outcome)
    e=$(json_field "$CLI_OUT" so_error)
    m=$(json_field "$CLI_OUT" epoll)
    [[ $o == "$2" ]] || fail "$1: client outcome $o, expected $2"
    [[ $e == "$3" ]] || fail "$1: client so_error $e, expected $3"
    [[ -z ${4:-} || $m == "$4" ]] || fail "$1: client epoll mask $m, expected $4"
}

# --------------------------------------------------------------------------- scenarios

# The plain "answered" shape, used by several scenarios:
# client keepalive idle 1 / intvl 1 / cnt 3, 100 bytes echoed, 3 answered probe rounds, FIN.
answered_run() { # answered_run NAME ADDR_FAMILY(4|6) FILE [extra capture: nano FILE2]
    local name=$1 fam=$2 file=$3 nano=${4:-} s cap2 err2
    if [[ $fam == 6 ]]; then s=$LAB_S6; else s=$LAB_S4; fi
    if [[ -n $nano ]]; then
        lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$nano" --time-stamp-precision nano tcp
        cap2=$LAB_CAPTURE_PID err2=$LAB_CAPTURE_ERR
    fi
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$file" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$s" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$s" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --send 100 --echo --close-after 3.5 --timeout 15
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    if [[ -n $nano ]]; then lab_capture_stop "$cap2" "$err2"; fi
}

check_answered() { # check_answered NAME FILE PROBER(c>s|s>c) ROUNDS
    local name=$1 f=$WORK/$2 p=$3 a
    if [[ $p == "c>s" ]]; then a="s>c"; else a="c>s"; fi
    analyse "$f"
    expect "$name" "keepalive probes $p" "$(count "$f" "$p:keepalive_probe")" -eq "$4"
    expect "$name" "keepalive ACKs $a" "$(count "$f" "$a:keepalive_ack")" -eq "$4"
    expect "$name" "FINs" "$(($(count "$f" c\>s:fin) + $(count "$f" s\>c:fin)))" -eq 2
    expect "$name" "RSTs" "$(tshark_count "$f" tcp.flags.reset==1)" -eq 0
    expect "$name" "retransmissions" "$(($(count "$f" c\>s:retransmission) + $(count "$f" s\>c:retransmission)))" -eq 0
    expect "$name" "tshark keep_alive" "$(tshark_count "$f" tcp.analysis.keep_alive)" -eq "$4"
}

sc_answered_v4() {
    local f=linux_ka_answered_v4.pcap
    lab_create answered4
    answered_run answered_v4 4 "$f" linux_ka_answered_v4_nano.pcap
    expect_client answered_v4 closed none
    check_answered answered_v4 "$f" "c>s" 3
    check_answered answered_v4_nano linux_ka_answered_v4_nano.pcap "c>s" 3
    [[ $(capinfos "$WORK/linux_ka_answered_v4_nano.pcap") == *"timestamp precision:  nanoseconds"* ]] ||
        fail "answered_v4: nano file is not nanosecond precision"
    cmp -s <(tcpdump -nn -S -r "$WORK/$f" 2>/dev/null | cut -d' ' -f2-) \
        <(tcpdump -nn -S -r "$WORK/linux_ka_answered_v4_nano.pcap" 2>/dev/null | cut -d' ' -f2-) ||
        fail "answered_v4: the microsecond and nanosecond captures differ"
    editcap -F pcapng "$WORK/$f" "$WORK/linux_ka_answered_v4.pcapng"
    [[ $(capinfos -t "$WORK/linux_ka_answered_v4.pcapng") == *"File type:"*"pcapng"* ]] ||
        fail "answered_v4: pcapng conversion failed"
    record_result "$f"
    install_files "$f" linux_ka_answered_v4_nano.pcap linux_ka_answered_v4.pcapng
}

sc_answered_v6() {
    local f=linux_ka_answered_v6.pcap
    lab_create answered6
    answered_run answered_v6 6 "$f"
    expect_client answered_v6 closed none
    check_answered answered_v6 "$f" "c>s" 3
    expect answered_v6 "IPv6 TCP frames" "$(tshark_count "$WORK/$f" 'ipv6 and tcp')" -ge 16
    record_result "$f"
    install_files "$f"
}

sc_nots_nosack() {
    local f=linux_ka_nots_nosack.pcap
    lab_create nots net.ipv4.tcp_timestamps=0 net.ipv4.tcp_sack=0
    answered_run nots_nosack 4 "$f"
    expect_client nots_nosack closed none
    check_answered nots_nosack "$f" "c>s" 3
    expect nots_nosack "segments with TSopt or SACK-permitted" \
        "$(tshark_count "$WORK/$f" 'tcp.options.timestamp.tsval or tcp.options.sack_perm')" == 0
    record_result "$f"
    install_files "$f"
}

# Data, then the server namespace drops everything: cnt unanswered probes, then the
# client kernel aborts with a RST; the application gets ETIMEDOUT.
sc_blackhole_abort() {
    local name=blackhole_abort f=linux_ka_blackhole_abort.pcap
    lab_create blackhole
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --send 100 --echo --timeout 15
    wait_event "$CLI_ST" exchanged
    lab_blackhole "$LAB_NS_S" both
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" error ETIMEDOUT "EPOLLIN|EPOLLERR|EPOLLHUP"
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 3
    expect "$name" "keepalive ACKs" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 0
    expect "$name" "keepalive_abort RSTs" "$(count "$WORK/$f" 'c>s:keepalive_abort')" -eq 1
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 1
    record_result "$f"
    install_files "$f"
}

# One answered probe, then the server "reboots": its egress is dropped, its sockets are
# closed with SO_LINGER{1,0} (the RST never leaves), the rule is removed. The client's next
# probe meets a kernel without the socket: RST (seq = the probe's ack, no ACK flag).
sc_reboot_rst() {
    local name=reboot_rst f=linux_ka_reboot_rst.pcap
    lab_create reboot
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    # idle 2: the probe at t=2 is answered; the server vanishes at t~2.5; next probe at t~4.
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 2 --intvl 1 --cnt 3 \
        --send 100 --echo --timeout 15
    wait_event "$CLI_ST" exchanged
    sleep 2.5
    lab_blackhole "$LAB_NS_S" out
    kill -USR1 "$SRV_PID"
    wait_event "$SRV_ST" vanished 5
    grep -q "\"pid\":$SRV_PID," "$SRV_ST" || fail "$name: signalled pid $SRV_PID is not the server"
    lab_unblackhole "$LAB_NS_S"
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" error ECONNRESET
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 2
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 1
    expect "$name" "keepalive RSTs s>c" "$(count "$WORK/$f" 's>c:keepalive_rst')" -eq 1
    expect "$name" "RSTs with ACK flag" "$(tshark_count "$WORK/$f" 'tcp.flags.reset==1 and tcp.flags.ack==1')" -eq 0
    record_result "$f"
    install_files "$f"
}

# Keepalive on the server's LISTENING socket, inherited by the accepted one; the client has
# none. Captured with -i any inside the server namespace: LINUX_SLL2.
sc_server_sll2() {
    local name=server_sll2 f=linux_ka_server_sll2.pcap
    lab_create sll2
    lab_capture_start "$LAB_NS_S" any "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1 --idle 1 --intvl 1 --cnt 3
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --send 100 --echo \
        --close-after 3.5 --timeout 15
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    grep -q '"event":"accepted".*"keepalive":{"so_keepalive":1,"idle":1,"intvl":1,"cnt":3}' "$SRV_ST" ||
        fail "$name: accepted socket did not inherit keepalive: $(grep accepted "$SRV_ST")"
    expect_client "$name" closed none
    # (no `| grep -q` here: with pipefail an early grep exit fails the pipeline via SIGPIPE)
    [[ $(tcpdump -r "$WORK/$f" -c 1 2>&1 >/dev/null) == *"link-type LINUX_SLL2"* ]] ||
        fail "$name: link type is not LINUX_SLL2"
    check_answered "$name" "$f" "s>c" 3
    record_result "$f"
    install_files "$f"
}

# Keepalive on, data, server blackholed, then ONE byte: the kernel retransmits it (no
# keepalive while data is unacknowledged) until TCP_USER_TIMEOUT (4 s) aborts — no RST.
sc_retrans_1byte() {
    local name=retrans_1byte f=linux_retrans_1byte.pcap
    lab_create retrans
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --send 100 --echo --late-bytes 1 --user-timeout 4000 --timeout 15
    wait_event "$CLI_ST" exchanged
    lab_blackhole "$LAB_NS_S" both
    kill -USR1 "$CLI_PID"
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" error ETIMEDOUT
    analyse "$WORK/$f"
    expect "$name" "1-byte retransmissions c>s" "$(count "$WORK/$f" 'c>s:retransmission')" -ge 3
    expect "$name" "keepalive probes" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 0
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    expect "$name" "tshark keep_alive (wrong)" "$(tshark_count "$WORK/$f" tcp.analysis.keep_alive)" -ge 3
    record_result "$f"
    install_files "$f"
}

# The server does not read and has a tiny receive buffer; the client writes 6000 bytes
# (MSS 500) and FIN. Window 0, zero-window probes for ~3.5 s, then the server reads.
sc_zero_window() {
    local name=zero_window f=linux_zero_window.pcap
    lab_create zerowin
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1 --mode sink --no-read --read-after 3.5 \
        --rcvbuf 2048 --mss 500
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --mss 500 --write-total 6000 --shutdown-after-write --close-wait 15 --timeout 20
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" closed none
    analyse "$WORK/$f"
    expect "$name" "zero-window probes c>s" "$(count "$WORK/$f" 'c>s:zero_window_probe')" -ge 3
    expect "$name" "keepalive probes" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 0
    expect "$name" "zero windows s>c" "$(tshark_count "$WORK/$f" 'tcp.analysis.zero_window')" -ge 1
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    expect "$name" "FINs" "$(($(count "$WORK/$f" c\>s:fin) + $(count "$WORK/$f" s\>c:fin)))" -eq 2
    record_result "$f"
    install_files "$f"
}

# 20 concurrent connections, keepalive idle 1 / intvl 1, 2 answered rounds each, FIN.
sc_many_flows() {
    local name=many_flows f=linux_ka_many_flows.pcap
    lab_create many
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 20
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --connections 20 \
        --idle 1 --intvl 1 --cnt 3 --send 10 --echo --close-after 2.5 --timeout 15
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["outcomes"]!={"closed":20})' \
        "$CLI_OUT" || fail "$name: not all 20 connections closed normally"
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 40
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 40
    expect "$name" "flows with exactly 2 probes" "$(tshark -r "$WORK/$f" -Y tcp.analysis.keep_alive \
        -T fields -e tcp.stream 2>/dev/null | sort | uniq -c | awk '$1 == 2' | wc -l)" == 20
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    record_result "$f"
    install_files "$f"
}

# Two keepalive connections at once: one captured on the client veth (Ethernet), the other
# with -i any in the server namespace (LINUX_SLL2); merged into one pcapng with two
# interfaces of different link types.
sc_mixed_linktypes() {
    local name=mixed_linktypes f=mixed_linktypes.pcapng capA errA types
    lab_create mixed
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/mixed_eth.pcap" tcp port 41001
    capA=$LAB_CAPTURE_PID errA=$LAB_CAPTURE_ERR
    lab_capture_start "$LAB_NS_S" any "$WORK/mixed_sll2.pcap" tcp port 41002
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 2
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 41001 --connections 2 \
        --idle 1 --intvl 1 --cnt 3 --send 100 --echo --close-after 2.5 --timeout 15
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    lab_capture_stop "$capA" "$errA"
    mergecap -w "$WORK/$f" "$WORK/mixed_eth.pcap" "$WORK/mixed_sll2.pcap"
    types=$(tshark -r "$WORK/$f" -T fields -e frame.interface_id -e frame.encap_type 2>/dev/null | sort -u |
        tr '\t\n' ': ')
    [[ $types == "0:1 1:210 " ]] || fail "$name: interfaces/encapsulations are '$types', expected '0:1 1:210 '"
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 4
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 4
    record_result "$f"
    install_files "$f"
}

# --------------------------------------------------------------------------- through a middlebox
# These run in a routed lab: client 10.77.N.1 - middlebox - server 10.77.(N+100).2
# (lab_create_routed), captured on the client's veth.

# nft_counter NS NAME — packets counted by the named nft counter in NS
nft_counter() {
    lab_exec "$1" nft list counters 2>/dev/null |
        awk -v n="$2" '$1 == "counter" { c = $2 } c == n && $1 == "packets" { print $2; exit }'
}

# The middlebox (NAT) forgets flows idle > 2 s and drops their packets. Client keepalive
# idle 4 s: the first probe meets a middlebox without state, 3 probes vanish, the client
# kernel aborts (its RST vanishes too). The server never sees a probe.
sc_middlebox_idle_drop() {
    local name=middlebox_idle_drop f=linux_ka_middlebox_idle_drop.pcap cap_c err_c
    lab_create_routed idledrop nat
    lab_idle_timeout "$LAB_NS_M" 2 drop
    lab_capture_start "$LAB_NS_S" "$LAB_IF_S" "$WORK/$name.server.pcap" tcp
    cap_c=$LAB_CAPTURE_PID err_c=$LAB_CAPTURE_ERR
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 4 --intvl 1 --cnt 3 \
        --send 100 --echo --timeout 20
    cli_wait "$name"
    lab_capture_stop
    lab_capture_stop "$cap_c" "$err_c"
    srv_stop
    expect_client "$name" error ETIMEDOUT "EPOLLIN|EPOLLERR|EPOLLHUP"
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 3
    expect "$name" "keepalive ACKs" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 0
    expect "$name" "keepalive_abort RSTs" "$(count "$WORK/$f" 'c>s:keepalive_abort')" -eq 1
    expect "$name" "packets the middlebox dropped as unknown" "$(nft_counter "$LAB_NS_M" forgotten)" -eq 4
    analyse "$WORK/$name.server.pcap"
    expect "$name" "probes that reached the server" "$(count "$WORK/$name.server.pcap" 'c>s:keepalive_probe')" -eq 0
    expect "$name" "RSTs that reached the server" "$(tshark_count "$WORK/$name.server.pcap" tcp.flags.reset==1)" -eq 0
    record_result "$f"
    install_files "$f"
}

# The same middlebox, client keepalive idle 1 s < the 2 s timeout: every probe refreshes the
# middlebox's state, the flow outlives the timeout several times over (closed after 5.5 s).
sc_middlebox_idle_alive() {
    local name=middlebox_idle_alive f=linux_ka_middlebox_idle_alive.pcap cap_c err_c n
    lab_create_routed idlealive nat
    lab_idle_timeout "$LAB_NS_M" 2 drop
    lab_capture_start "$LAB_NS_S" "$LAB_IF_S" "$WORK/$name.server.pcap" tcp
    cap_c=$LAB_CAPTURE_PID err_c=$LAB_CAPTURE_ERR
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --send 100 --echo --close-after 5.5 --timeout 20
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    lab_capture_stop "$cap_c" "$err_c"
    expect_client "$name" closed none
    analyse "$WORK/$f"
    n=$(count "$WORK/$f" 'c>s:keepalive_probe')
    expect "$name" "keepalive probes c>s" "$n" -ge 4
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq "$n"
    expect "$name" "FINs" "$(($(count "$WORK/$f" c\>s:fin) + $(count "$WORK/$f" s\>c:fin)))" -eq 2
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    expect "$name" "packets the middlebox dropped as unknown" "$(nft_counter "$LAB_NS_M" forgotten)" -eq 0
    analyse "$WORK/$name.server.pcap"
    expect "$name" "probes that reached the server" "$(count "$WORK/$name.server.pcap" 'c>s:keepalive_probe')" -eq "$n"
    record_result "$f"
    install_files "$f"
}

# The middlebox forgets the flow after 2 s and answers what it no longer knows with a RST
# (nft `reject with tcp reset`), spoofing the server: seq = the probe's ack, no ACK flag —
# the shape of a rebooted peer's RST, but with TTL 64 where the server's own segments,
# routed through the middlebox, arrive with TTL 63.
sc_middlebox_idle_reset() {
    local name=middlebox_idle_reset f=linux_ka_middlebox_idle_reset.pcap
    lab_create_routed idlereset nat
    lab_idle_timeout "$LAB_NS_M" 2 reset
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 4 --intvl 1 --cnt 3 \
        --send 100 --echo --timeout 20
    cli_wait "$name"
    lab_capture_stop
    srv_stop
    expect_client "$name" error ECONNRESET "EPOLLIN|EPOLLERR|EPOLLHUP"
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 1
    expect "$name" "keepalive RSTs s>c" "$(count "$WORK/$f" 's>c:keepalive_rst')" -eq 1
    expect "$name" "RSTs with ACK flag" "$(tshark_count "$WORK/$f" 'tcp.flags.reset==1 and tcp.flags.ack==1')" -eq 0
    expect "$name" "RSTs with TTL 64 (made by the middlebox)" "$(tshark_count "$WORK/$f" 'tcp.flags.reset==1 and ip.ttl==64')" -eq 1
    expect "$name" "server segments with TTL 63 (routed)" \
        "$(tshark_count "$WORK/$f" "ip.src==$LAB_S4 and tcp.flags.reset==0 and ip.ttl==63")" -ge 3
    record_result "$f"
    install_files "$f"
}

# delayed_run NAME FILE DELAY CNT CLOSE_AFTER — through the middlebox, which delays
# everything towards the server by DELAY: keepalive idle 1 / intvl 1 / CNT, 100 bytes
# echoed, the client closes after CLOSE_AFTER s. Captured on the client's veth.
delayed_run() {
    local name=$1 f=$2
    lab_create_routed "${name%%_*}"
    lab_delay "$LAB_NS_M" "$LAB_IF_MS" "$3" "$WORK/delay"
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt "$4" \
        --send 100 --echo --close-after "$5" --timeout 30
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    lab_delay_off "$LAB_NS_M" "$LAB_IF_MS" "$WORK/delay"
    expect_client "$name" closed none
}

# The middlebox delays everything towards the server by 50 ms (tc netem, or the userspace
# delayer where the kernel has no sch_netem): probes answered, each answer >= 50 ms later.
sc_delay_50ms() {
    local name=delay_50ms f=linux_ka_delay_50ms.pcap n short
    delayed_run "$name" "$f" 50ms 3 3.6
    analyse "$WORK/$f"
    n=$(count "$WORK/$f" 'c>s:keepalive_probe')
    expect "$name" "keepalive probes c>s" "$n" -ge 3
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq "$n"
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    # probe -> answer gaps, from the classifier's frames and tshark's times
    short=$(join -t $'\t' <(awk -F'\t' '$3 ~ /^keepalive_(probe|ack)$/ { print $1 "\t" $3 }' "$WORK/$f.classified" | sort) \
        <(tshark -r "$WORK/$f" -T fields -e frame.number -e frame.time_relative 2>/dev/null | sort) |
        sort -n | awk -F'\t' '$2 == "keepalive_probe" { t = $3 } $2 == "keepalive_ack" && $3 - t < 0.050 { n++ } END { print n + 0 }')
    expect "$name" "answers faster than 50 ms" "$short" -eq 0
    record_result "$f"
    install_files "$f"
}

# A short snaplen: tcpdump -s 54 keeps Ethernet, IPv4 and the TCP header's fixed 20 bytes and
# cuts every option (the timestamps of every segment, the SYNs' options). Otherwise the plain
# answered run: 3 answered probes, FIN.
sc_snaplen_54() {
    local name=snaplen_54 f=linux_ka_snaplen_54.pcap
    lab_create snap
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" -s 54 tcp
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 3 \
        --send 100 --echo --close-after 3.5 --timeout 15
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" closed none
    expect "$name" "frames longer than 54 bytes" "$(tshark_count "$WORK/$f" 'frame.cap_len > 54')" -eq 0
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 3
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 3
    expect "$name" "FINs" "$(($(count "$WORK/$f" c\>s:fin) + $(count "$WORK/$f" s\>c:fin)))" -eq 2
    # Wireshark flags none of them: it gives up on a header whose options were cut.
    expect "$name" "tshark keep_alive" "$(tshark_count "$WORK/$f" tcp.analysis.keep_alive)" -eq 0
    record_result "$f"
    install_files "$f"
}

# Answers that arrive after the next probe: the middlebox delays everything towards the
# server by 1.5 s, longer than the 1 s interval. Every probe is answered, 1.5 s later.
sc_late_answers() {
    local name=late_answers f=linux_ka_late_answers.pcap n
    delayed_run "$name" "$f" 1500ms 5 7
    # tshark finds the probes (its rule needs no state for them); the answers,
    # later than the next probe, are what this file is for: tests/lab_captures.rs.
    n=$(tshark_count "$WORK/$f" tcp.analysis.keep_alive)
    expect "$name" "keepalive probes (tshark)" "$n" -ge 4
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    record_result "$f"
    install_files "$f"
}

# A capture started mid-session, between the data and the first probe: its first frame is a
# probe, with nothing before it to say what the next seq is. idle 2 / intvl 1: 2 answered
# probes (answered probes come an idle apart), FIN.
sc_mid_session() {
    local name=mid_session f=linux_ka_mid_session.pcap
    lab_create mid
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 2 --intvl 1 --cnt 3 \
        --send 100 --echo --close-after 4.5 --timeout 15
    sleep 1
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" closed none
    expect "$name" "SYNs" "$(tshark_count "$WORK/$f" tcp.flags.syn==1)" -eq 0
    expect "$name" "data segments" "$(tshark_count "$WORK/$f" 'tcp.len > 1')" -eq 0
    expect "$name" "frames (2 probes, 2 answers, FIN, FIN, ACK)" "$(tshark_count "$WORK/$f" tcp)" -eq 7
    record_result "$f"
    install_files "$f"
}

# A temporary outage: the middlebox drops 100 % for 2.5 s right after the data, then
# forwards again. Keepalive idle 1 / intvl 1 / cnt 5: two probes go unanswered, the third
# is answered and the connection lives on (closed normally after 5 s).
sc_outage_recovered() {
    local name=outage_recovered f=linux_ka_outage_recovered.pcap p a
    lab_create_routed outage
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    cli_start "$name" "$LAB_NS_C" --addr "$LAB_S4" --bind-port 40001 --idle 1 --intvl 1 --cnt 5 \
        --send 100 --echo --close-after 5 --timeout 20
    wait_event "$CLI_ST" exchanged
    lab_loss "$LAB_NS_M" 100%
    sleep 2.5
    lab_loss_off "$LAB_NS_M"
    cli_wait "$name"
    srv_stop
    lab_capture_stop
    expect_client "$name" closed none
    analyse "$WORK/$f"
    p=$(count "$WORK/$f" 'c>s:keepalive_probe')
    a=$(count "$WORK/$f" 's>c:keepalive_ack')
    expect "$name" "keepalive probes c>s" "$p" -ge 4
    expect "$name" "keepalive ACKs s>c" "$a" -ge 2
    expect "$name" "unanswered probes" "$((p - a))" -ge 1
    expect "$name" "first two segments are unanswered probes" \
        "$(awk -F'\t' '$1 != "count" { printf "%s ", $3 }' "$WORK/$f.classified" | cut -d' ' -f1-2)" == \
        "keepalive_probe keepalive_probe"
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    record_result "$f"
    install_files "$f"
}

# --------------------------------------------------------------------------- kaprobe's own probes

# kaprobe_bin — the kaprobe binary (KAPROBE, or a fresh debug build).
kaprobe_bin() {
    if [[ -n ${KAPROBE:-} ]]; then
        printf '%s\n' "$KAPROBE"
        return
    fi
    (cd "$ROOT" && cargo build --quiet --bin kaprobe) || fail "cargo build failed"
    printf '%s\n' "$ROOT/target/debug/kaprobe"
}

# kaprobe's userspace keepalive (`kaprobe probe --style windows`: 1 byte 0x00 at SND.NXT − 1)
# against a Linux peer with SACK: each probe answered at once with a D-SACK block for the
# probe's byte. Client side: kaprobe's kernel socket (kernel keepalive off), 100 bytes
# echoed, idle 1 s, 3 answered rounds, then kaprobe closes (FIN).
sc_windows_style_probe_dsack() {
    local name=windows_style_probe_dsack f=windows_style_probe_dsack.pcap kp out
    kp=$(kaprobe_bin)
    lab_create winstyle
    lab_capture_start "$LAB_NS_C" "$LAB_IF_C" "$WORK/$f" tcp
    srv_start "$name" "$LAB_NS_S" --addr "$LAB_S4" --conns 1
    head -c 100 /dev/zero | tr '\0' x >"$WORK/$name.data"
    out=$WORK/$name.kaprobe.jsonl
    lab_exec "$LAB_NS_C" "$kp" probe --connect "$LAB_S4:$PORT" --bind-port 40001 --send-file "$WORK/$name.data" \
        --style windows --idle 1s --interval 1s --count 3 --rounds 3 --json >"$out" 2>"$WORK/$name.kaprobe.err" ||
        { cat "$WORK/$name.kaprobe.err" >&2; fail "$name: kaprobe probe failed"; }
    srv_stop
    lab_capture_stop
    grep -q '"type":"verdict","outcome":"alive"' "$out" || fail "$name: kaprobe's verdict: $(tail -1 "$out")"
    expect "$name" "kaprobe's D-SACK answers" "$(grep -c '"type":"probe_acked".*"dsack":true' "$out")" -eq 3
    analyse "$WORK/$f"
    expect "$name" "keepalive probes c>s" "$(count "$WORK/$f" 'c>s:keepalive_probe')" -eq 3
    expect "$name" "keepalive ACKs s>c" "$(count "$WORK/$f" 's>c:keepalive_ack')" -eq 3
    expect "$name" "1-byte probes" "$(tshark_count "$WORK/$f" 'tcp.analysis.keep_alive and tcp.len==1')" -eq 3
    expect "$name" "answers with a SACK block" "$(tshark_count "$WORK/$f" 'tcp.analysis.keep_alive_ack and tcp.options.sack_le')" -eq 3
    expect "$name" "tshark keep_alive" "$(tshark_count "$WORK/$f" tcp.analysis.keep_alive)" -eq 3
    expect "$name" "FINs" "$(($(count "$WORK/$f" c\>s:fin) + $(count "$WORK/$f" s\>c:fin)))" -eq 2
    expect "$name" "RSTs" "$(tshark_count "$WORK/$f" tcp.flags.reset==1)" -eq 0
    install_files "$f"
}

# --------------------------------------------------------------------------- main

linktype_names() { # linktype_names FILE — Wireshark encapsulations in use, by name
    tshark -r "$1" -T fields -e frame.encap_type 2>/dev/null | sort -nu |
        awk '{ n = ($1 == 1 ? "EN10MB" : $1 == 210 ? "LINUX_SLL2" : $1 == 25 ? "LINUX_SLL" : "wtap" $1)
               s = s (s == "" ? "" : "+") n } END { print s }'
}

summary() {
    local f ka
    printf '\n%-32s %6s %5s %-17s %5s %5s  %s\n' file bytes pkts linktype ts_ka ts_kaa classifier >&2
    for f in "${WRITTEN[@]}"; do
        [[ -f $OUT/$f ]] || continue
        # tshark's own verdicts: Keep-Alive and Keep-Alive ACK counts (one pass)
        ka=$(tshark -r "$OUT/$f" -T fields -e tcp.analysis.keep_alive -e tcp.analysis.keep_alive_ack \
            2>/dev/null | awk -F'\t' '{ n++; if ($1 != "") a++; if ($2 != "") b++ } END { print n + 0, a + 0, b + 0 }')
        read -r -a ka <<<"$ka"
        printf '%-32s %6s %5s %-17s %5s %5s  %s\n' "$f" "$(stat -c %s "$OUT/$f")" "${ka[0]}" \
            "$(linktype_names "$OUT/$f")" "${ka[1]}" "${ka[2]}" \
            "$(classify "$OUT/$f" | awk -F'\t' '$1 == "count" { print $2 "=" $3 }' | sort | tr '\n' ' ')" >&2
    done
}

main() {
    local want=() s t0
    while (($# > 0)); do
        case $1 in
        -h | --help) usage; exit 0 ;;
        --list) printf '%s\n' "${SCENARIOS[@]}"; exit 0 ;;
        --cleanup) lab_require_root; lab_remove_leftovers "$LAB_BASE_PREFIX"; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *)
            [[ " ${SCENARIOS[*]} " == *" $1 "* ]] || { echo "unknown scenario: $1" >&2; exit 2; }
            want+=("$1")
            ;;
        esac
        shift
    done
    ((${#want[@]} > 0)) || want=("${SCENARIOS[@]}")

    lab_require_root
    lab_require_tools ip nft ethtool tcpdump tshark editcap mergecap capinfos "$PYTHON" awk
    [[ -f $PEER ]] || fail "missing $PEER"
    mkdir -p "$OUT"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaprobe-record.XXXXXX")
    # shellcheck disable=SC2016  # expanded at exit time, by the trap
    lab_install_traps 'rm -rf "$WORK"'
    : >"$WORK/app-results.jsonl"
    lab_remove_leftovers "$LAB_BASE_PREFIX"

    t0=$(date +%s)
    WRITTEN=()
    for s in "${want[@]}"; do
        say "recording $s"
        "sc_$s"
        lab_teardown
        case $s in
        answered_v4) WRITTEN+=(linux_ka_answered_v4.pcap linux_ka_answered_v4_nano.pcap linux_ka_answered_v4.pcapng) ;;
        mixed_linktypes) WRITTEN+=(mixed_linktypes.pcapng) ;;
        windows_style_probe_dsack) WRITTEN+=(windows_style_probe_dsack.pcap) ;;
        answered_v6 | blackhole_abort | reboot_rst | server_sll2 | nots_nosack | many_flows | \
            middlebox_idle_drop | middlebox_idle_alive | middlebox_idle_reset | delay_50ms | outage_recovered | \
            snaplen_54 | late_answers | mid_session)
            WRITTEN+=("linux_ka_$s.pcap") ;;
        *) WRITTEN+=("linux_$s.pcap") ;;
        esac
    done
    # What the applications saw, one line per file (merged into any existing results).
    if [[ -f $OUT/app-results.jsonl ]]; then
        "$PYTHON" - "$OUT/app-results.jsonl" "$WORK/app-results.jsonl" <<'EOF'
import json, sys
old, new = sys.argv[1], sys.argv[2]
rows = {}
for path in (old, new):
    for line in open(path):
        if line.strip():
            rec = json.loads(line)
            rows[rec["file"]] = rec
with open(old, "w") as f:
    for name in sorted(rows):
        f.write(json.dumps(rows[name], separators=(",", ":")) + "\n")
EOF
    else
        sort "$WORK/app-results.jsonl" >"$OUT/app-results.jsonl"
    fi
    summary
    say "all ${#want[@]} scenario(s) recorded in $(($(date +%s) - t0)) s into $OUT"
}

main "$@"
