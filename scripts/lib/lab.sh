# shellcheck shell=bash
# scripts/lib/lab.sh — network-namespace lab for kaprobe (source it, do not run it).
#
# A "lab" is a set of network namespaces whose names all start with one prefix:
#
#     kaprobe-lab-<pid of the creating shell>-<lab name>-<role>
#
# e.g. kaprobe-lab-4242-answered-c and kaprobe-lab-4242-answered-s. The pid makes
# parallel runs collide-free and lets lab_leftovers tell a live lab from an abandoned
# one. Everything a lab holds (veths, addresses, nft rules, sysctls) lives inside its
# namespaces, so deleting the namespaces removes all of it.
#
# Building blocks (usable for bigger topologies, e.g. client - middlebox - server):
#   lab_ns_add NS                        create a namespace, loopback up, remember it
#   lab_veth NS_A IF_A NS_B IF_B         veth pair between two namespaces, offloads off, up
#   lab_addr NS IF CIDR...               add addresses (IPv6 ones get nodad)
#   lab_sysctl NS key=value...           per-namespace sysctls
#   lab_exec NS CMD...                   run a command inside a namespace
#   lab_spawn NS OUT ERR CMD...          same, in the background; LAB_SPAWN_PID = CMD's pid
#   lab_offloads_off NS IF               ethtool -K ... off (individual failures ignored)
#   lab_blackhole NS [in|out|both]       nft: drop all traffic in/out of NS (table inet kaplab)
#   lab_unblackhole NS                   remove that table
#   lab_capture_start NS IF FILE [tcpdump args...]   start tcpdump, wait until ready
#   lab_capture_stop                     stop the last capture cleanly (SIGINT, wait)
#   lab_wait_grep FILE REGEX TIMEOUT     wait until a line matching REGEX is in FILE
#   lab_wait_pid PID TIMEOUT             wait for a process we started; kill it on timeout
#   lab_alive PID / lab_wait_gone PID TIMEOUT   any process (zombies count as gone)
#   lab_teardown [NS...]                 kill what runs in the namespaces, delete them
#   lab_leftovers [PREFIX]               list abandoned labs (creator pid gone)
#   lab_remove_leftovers [PREFIX]        delete them
#   lab_install_traps                    teardown on EXIT / INT / TERM
#
# The ready-made two-namespace lab:
#   lab_create NAME [key=value sysctl...]   sets LAB_NS_C LAB_NS_S LAB_IF_C LAB_IF_S
#                                           LAB_C4 LAB_S4 LAB_C6 LAB_S6 (addresses without /len)
# The routed lab, client - middlebox - server (what scripts/lab.sh runs):
#   lab_create_routed NAME [nat] [sysctl...] also sets LAB_NS_M LAB_IF_MC LAB_IF_MS and the
#                                           middlebox addresses LAB_MC4 LAB_MS4 LAB_MC6 LAB_MS6
#   lab_routed_vars PREFIX NET / lab_routed_build [nat] [sysctl...]   the same in two steps
# Middlebox faults (each with an _off that undoes it):
#   lab_idle_timeout NS_M SECONDS [drop|reset]   conntrack forgets idle flows, then drop/RST
#   lab_loss NS_M PERCENT                        drop a share of forwarded packets (nft numgen)
#   lab_delay NS_M IF DURATION STATE_PREFIX      delay out of IF (tc netem, else delayq.py)
#
# Addresses are 10.77.<net>.0/24 and fd77:0:0:<net>::/64, used only inside our namespaces.

LAB_BASE_PREFIX=${LAB_BASE_PREFIX:-kaprobe-lab-}
# Every namespace this shell created, in creation order.
LAB_NAMESPACES=()
# Pid of the last capture started by lab_capture_start.
LAB_CAPTURE_PID=
LAB_CAPTURE_ERR=
# Temporary files (tcpdump stderr) removed on exit.
LAB_TMPFILES=()
# IPv4 third octet / IPv6 fourth group of the next network lab_create hands out.
LAB_NEXT_NET=${LAB_NEXT_NET:-1}
# This file's directory (scripts/lib); the helper programs are in scripts/lab.
LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; return 1; }

lab_require_root() {
    [[ $(id -u) -eq 0 ]] || lab_die "must run as root (network namespaces, nft, tcpdump)"
}

# lab_require_tools TOOL... — fail listing every missing tool.
lab_require_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || lab_die "missing tools: ${missing[*]} (apt-get -y install ...)"
}

# lab_prefix [NAME] — the namespace prefix of this shell's lab NAME.
lab_prefix() {
    printf '%s%s-%s' "$LAB_BASE_PREFIX" "$$" "${1:+$1-}"
}

lab_exec() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# lab_spawn NS OUTFILE ERRFILE CMD... — start CMD in NS in the background; LAB_SPAWN_PID is
# the pid of CMD itself (a simple command is exec'd by the forked shell, and `ip netns exec`
# execs too), so signals sent to it reach CMD. (Backgrounding a shell *function* would give
# the pid of a subshell instead.)
lab_spawn() {
    local ns=$1 out=$2 err=$3
    shift 3
    ip netns exec "$ns" "$@" >"$out" 2>"$err" &
    LAB_SPAWN_PID=$!
}

lab_ns_add() {
    local ns=$1
    ip netns add "$ns" || lab_die "cannot create namespace $ns"
    LAB_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
}

lab_offloads_off() {
    local ns=$1 ifname=$2 feat
    # One feature at a time: a feature the driver cannot change must not stop the others.
    for feat in tso gso gro tx rx sg lro ufo; do
        lab_exec "$ns" ethtool -K "$ifname" "$feat" off >/dev/null 2>&1 || true
    done
}

# lab_veth NS_A IF_A NS_B IF_B — the veth is created directly inside the namespaces,
# so the names never exist in the root namespace and cannot collide with anything there.
lab_veth() {
    local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4
    ip link add name "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b" ||
        lab_die "cannot create veth $ns_a/$if_a <-> $ns_b/$if_b"
    lab_offloads_off "$ns_a" "$if_a"
    lab_offloads_off "$ns_b" "$if_b"
    ip -n "$ns_a" link set "$if_a" up
    ip -n "$ns_b" link set "$if_b" up
}

# lab_addr NS IF CIDR... — IPv6 addresses get nodad (usable immediately).
lab_addr() {
    local ns=$1 ifname=$2 cidr
    shift 2
    for cidr in "$@"; do
        if [[ $cidr == *:* ]]; then
            ip -n "$ns" -6 addr add "$cidr" dev "$ifname" nodad
        else
            ip -n "$ns" addr add "$cidr" dev "$ifname"
        fi
    done
}

# lab_sysctl NS key=value... (keys as in sysctl(8), e.g. net.ipv4.tcp_sack=0)
lab_sysctl() {
    local ns=$1 kv
    shift
    for kv in "$@"; do
        lab_exec "$ns" sysctl -q -w "$kv" >/dev/null || lab_die "sysctl $kv failed in $ns"
    done
}

# lab_create NAME [sysctl key=value...] — client namespace <veth> server namespace.
# The sysctls are applied to both namespaces.
lab_create() {
    local name=$1 prefix net
    shift
    prefix=$(lab_prefix "$name")
    net=$LAB_NEXT_NET
    LAB_NEXT_NET=$((LAB_NEXT_NET + 1))
    LAB_NS_C=${prefix}c
    LAB_NS_S=${prefix}s
    LAB_IF_C=veth-c
    LAB_IF_S=veth-s
    LAB_C4=10.77.$net.1
    LAB_S4=10.77.$net.2
    LAB_C6=fd77:0:0:$net::1
    LAB_S6=fd77:0:0:$net::2
    lab_ns_add "$LAB_NS_C" || return 1
    lab_ns_add "$LAB_NS_S" || return 1
    if (($# > 0)); then
        lab_sysctl "$LAB_NS_C" "$@" || return 1
        lab_sysctl "$LAB_NS_S" "$@" || return 1
    fi
    lab_veth "$LAB_NS_C" "$LAB_IF_C" "$LAB_NS_S" "$LAB_IF_S" || return 1
    lab_addr "$LAB_NS_C" "$LAB_IF_C" "$LAB_C4/24" "$LAB_C6/64"
    lab_addr "$LAB_NS_S" "$LAB_IF_S" "$LAB_S4/24" "$LAB_S6/64"
}

# lab_routed_vars PREFIX NET — names and addresses of a routed lab (creates nothing):
#   client LAB_NS_C (LAB_IF_C) — (LAB_IF_MC) middlebox LAB_NS_M (LAB_IF_MS) — (LAB_IF_S) server LAB_NS_S
#   client side 10.77.NET.0/24, fd77:0:0:NET::/64 (client .1 / ::1, middlebox .254 / ::254)
#   server side 10.77.NET+100.0/24, fd77:0:0:NET+100::/64 (server .2 / ::2, middlebox .254 / ::254)
lab_routed_vars() {
    local prefix=$1 net=$2 snet=$(($2 + 100))
    LAB_NS_C=${prefix}c
    LAB_NS_M=${prefix}m
    LAB_NS_S=${prefix}s
    LAB_IF_C=veth-c
    LAB_IF_MC=veth-mc
    LAB_IF_MS=veth-ms
    LAB_IF_S=veth-s
    LAB_C4=10.77.$net.1
    LAB_MC4=10.77.$net.254
    LAB_MS4=10.77.$snet.254
    LAB_S4=10.77.$snet.2
    LAB_C6=fd77:0:0:$net::1
    LAB_MC6=fd77:0:0:$net::254
    LAB_MS6=fd77:0:0:$snet::254
    LAB_S6=fd77:0:0:$snet::2
}

# lab_routed_build [nat] [sysctl key=value...] — create the lab lab_routed_vars described:
# three namespaces, two veth pairs (offloads off), IPv4 + IPv6, default routes via the
# middlebox, forwarding on. The middlebox always tracks connections (table inet kaplab_ct,
# which also counts what it forwards), so an idle timeout added later knows every flow
# from its SYN. With `nat` it masquerades everything leaving towards the server. The sysctls
# go to the client and server namespaces.
lab_routed_build() {
    local nat=0 ns
    if [[ ${1:-} == nat ]]; then
        nat=1
        shift
    fi
    for ns in "$LAB_NS_C" "$LAB_NS_M" "$LAB_NS_S"; do
        lab_ns_add "$ns" || return 1
    done
    if (($# > 0)); then
        lab_sysctl "$LAB_NS_C" "$@" || return 1
        lab_sysctl "$LAB_NS_S" "$@" || return 1
    fi
    lab_sysctl "$LAB_NS_M" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || return 1
    lab_veth "$LAB_NS_C" "$LAB_IF_C" "$LAB_NS_M" "$LAB_IF_MC" || return 1
    lab_veth "$LAB_NS_M" "$LAB_IF_MS" "$LAB_NS_S" "$LAB_IF_S" || return 1
    lab_addr "$LAB_NS_C" "$LAB_IF_C" "$LAB_C4/24" "$LAB_C6/64" || return 1
    lab_addr "$LAB_NS_M" "$LAB_IF_MC" "$LAB_MC4/24" "$LAB_MC6/64" || return 1
    lab_addr "$LAB_NS_M" "$LAB_IF_MS" "$LAB_MS4/24" "$LAB_MS6/64" || return 1
    lab_addr "$LAB_NS_S" "$LAB_IF_S" "$LAB_S4/24" "$LAB_S6/64" || return 1
    ip -n "$LAB_NS_C" route add default via "$LAB_MC4" || return 1
    ip -n "$LAB_NS_C" -6 route add default via "$LAB_MC6" || return 1
    ip -n "$LAB_NS_S" route add default via "$LAB_MS4" || return 1
    ip -n "$LAB_NS_S" -6 route add default via "$LAB_MS6" || return 1
    lab_exec "$LAB_NS_M" nft -f - <<'NFT' || { lab_die "nft (conntrack table) failed in $LAB_NS_M"; return 1; }
table inet kaplab_ct {
  counter fwd_new {}
  counter fwd_established {}
  counter fwd_invalid {}
  chain forward {
    type filter hook forward priority 10; policy accept;
    ct state new counter name "fwd_new"
    ct state established counter name "fwd_established"
    ct state invalid counter name "fwd_invalid"
  }
}
NFT
    if ((nat)); then
        printf 'table inet kaplab_nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "%s" masquerade\n  }\n}\n' \
            "$LAB_IF_MS" | lab_exec "$LAB_NS_M" nft -f - || { lab_die "nft (nat) failed in $LAB_NS_M"; return 1; }
    fi
}

# lab_create_routed NAME [nat] [sysctl...] — client - middlebox - server, with this shell's
# prefix and the next free NET (like lab_create).
lab_create_routed() {
    local name=$1
    shift
    lab_routed_vars "$(lab_prefix "$name")" "$LAB_NEXT_NET"
    LAB_NEXT_NET=$((LAB_NEXT_NET + 1))
    lab_routed_build "$@"
}

# lab_idle_timeout NS_M SECONDS [drop|reset] — the middlebox forgets a TCP flow that was idle
# longer than SECONDS (conntrack's established timeout) and then drops every packet of it
# that is not a SYN (or, with `reset`, answers it with a RST as some load balancers do).
# A new timeout applies to a flow from its next packet on: set it before the connection.
lab_idle_timeout() {
    local ns=$1 t=$2 mode=${3:-drop} verdict
    [[ $t =~ ^[1-9][0-9]*$ ]] || { lab_die "idle timeout must be whole seconds >= 1, not '$t'"; return 1; }
    case $mode in
    drop) verdict=drop ;;
    reset) verdict="reject with tcp reset" ;;
    *) lab_die "idle-timeout mode must be drop or reset, not '$mode'"; return 1 ;;
    esac
    lab_idle_timeout_off "$ns"
    lab_sysctl "$ns" "net.netfilter.nf_conntrack_tcp_timeout_established=$t" || return 1
    lab_exec "$ns" nft -f - <<NFT || { lab_die "nft (idle timeout) failed in $ns"; return 1; }
table inet kaplab_idle {
  counter forgotten {}
  chain forward {
    type filter hook forward priority 0; policy accept;
    meta l4proto tcp ct state invalid counter name "forgotten" $verdict
    meta l4proto tcp ct state new tcp flags & (syn | ack) != syn counter name "forgotten" $verdict
  }
}
NFT
}

lab_idle_timeout_off() {
    lab_exec "$1" nft delete table inet kaplab_idle 2>/dev/null || true
    # back to the kernel default, 5 days
    lab_exec "$1" sysctl -q -w net.netfilter.nf_conntrack_tcp_timeout_established=432000 >/dev/null 2>&1 || true
}

# lab_loss NS_M PERCENT — the middlebox drops PERCENT % of the packets it forwards, each
# direction independently (nft numgen; 0.1 % steps).
lab_loss() {
    local ns=$1 p=${2%\%} permille
    [[ $p =~ ^[0-9]+(\.[0-9])?$ ]] || { lab_die "loss must be a percentage like 10% or 2.5%, not '$2'"; return 1; }
    permille=$(awk -v p="$p" 'BEGIN { printf "%d", p * 10 + 0.5 }')
    ((permille <= 1000)) || { lab_die "loss above 100%"; return 1; }
    local match="numgen random mod 1000 < $permille "
    ((permille < 1000)) || match=""
    lab_loss_off "$ns"
    lab_exec "$ns" nft -f - <<NFT || { lab_die "nft (loss) failed in $ns"; return 1; }
table inet kaplab_loss {
  counter lost {}
  chain forward {
    type filter hook forward priority -5; policy accept;
    ${match}counter name "lost" drop
  }
}
NFT
}

lab_loss_off() {
    lab_exec "$1" nft delete table inet kaplab_loss 2>/dev/null || true
}

# lab_ms DURATION — print DURATION (50ms, 1.5s, or plain seconds) in whole milliseconds.
lab_ms() {
    awk -v d="$1" 'BEGIN {
        if (d ~ /^[0-9]+(\.[0-9]+)?ms$/) { sub(/ms$/, "", d); v = d }
        else if (d ~ /^[0-9]+(\.[0-9]+)?s?$/) { sub(/s$/, "", d); v = d * 1000 }
        else exit 1
        printf "%d\n", v + 0.5 }'
}

# lab_delay NS_M IF DURATION STATE_PREFIX — every packet the middlebox sends out of IF waits
# DURATION first (the round trip through IF grows by DURATION). tc netem when the kernel has
# sch_netem; otherwise scripts/lab/delayq.py holds the packets (iptables NFQUEUE, queue 7).
# Files STATE_PREFIX.{impl,pid,jsonl,err} remember what was done, for lab_delay_off.
lab_delay() {
    local ns=$1 ifname=$2 ms st=$4 ipt
    ms=$(lab_ms "$3") || { lab_die "delay must look like 50ms or 1s, not '$3'"; return 1; }
    lab_delay_off "$ns" "$ifname" "$st"
    if lab_exec "$ns" tc qdisc replace dev "$ifname" root netem delay "${ms}ms" 2>/dev/null; then
        echo netem >"$st.impl"
        return 0
    fi
    # No sch_netem in this kernel: the userspace delayer.
    lab_require_tools iptables ip6tables || return 1
    rm -f "$st.jsonl"
    lab_spawn "$ns" /dev/null "$st.err" "${PYTHON:-python3}" "$LAB_LIB_DIR/../lab/delayq.py" \
        --queue 7 --delay-ms "$ms" --status "$st.jsonl"
    echo "$LAB_SPAWN_PID" >"$st.pid"
    if ! lab_wait_grep "$st.jsonl" '"event":"ready"' 10; then
        cat "$st.err" >&2
        lab_die "delayq.py did not start in $ns"
        return 1
    fi
    echo nfqueue >"$st.impl"
    for ipt in iptables ip6tables; do
        lab_exec "$ns" "$ipt" -w -t mangle -A FORWARD -o "$ifname" -j NFQUEUE --queue-num 7 ||
            { lab_die "$ipt NFQUEUE rule failed in $ns"; return 1; }
    done
}

lab_delay_off() {
    local ns=$1 ifname=$2 st=$3 ipt pid
    case $(cat "$st.impl" 2>/dev/null) in
    netem) lab_exec "$ns" tc qdisc del dev "$ifname" root 2>/dev/null || true ;;
    nfqueue)
        for ipt in iptables ip6tables; do
            lab_exec "$ns" "$ipt" -w -t mangle -D FORWARD -o "$ifname" -j NFQUEUE --queue-num 7 2>/dev/null || true
        done
        pid=$(cat "$st.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && lab_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            lab_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
        fi
        ;;
    esac
    rm -f "$st.impl" "$st.pid"
}

# lab_alive PID — the process exists and is not a zombie (an orphan that exited stays a
# zombie until whatever adopted it reaps it, which can take a while).
lab_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(awk '{ sub(/^.*\) /, ""); print substr($0, 1, 1) }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

# lab_wait_gone PID TIMEOUT_S — wait for a process (not necessarily our child) to exit.
lab_wait_gone() {
    local pid=$1 i
    for ((i = 0; i < $2 * 50; i++)); do
        lab_alive "$pid" || return 0
        sleep 0.02
    done
    return 1
}

# lab_blackhole NS [in|out|both] — drop every packet entering and/or leaving NS.
lab_blackhole() {
    local ns=$1 dir=${2:-both} rules=""
    [[ $dir == in || $dir == out || $dir == both ]] ||
        { lab_die "lab_blackhole: direction must be in, out or both"; return 1; }
    [[ $dir == out ]] || rules+="  chain in { type filter hook input priority -10; policy drop; }"$'\n'
    [[ $dir == in ]] || rules+="  chain out { type filter hook output priority -10; policy drop; }"$'\n'
    lab_unblackhole "$ns"
    printf 'table inet kaplab {\n%s}\n' "$rules" | lab_exec "$ns" nft -f - ||
        lab_die "nft failed in $ns"
}

lab_unblackhole() {
    lab_exec "$1" nft delete table inet kaplab 2>/dev/null || true
}

# lab_wait_grep FILE REGEX TIMEOUT_S [SKIP] — poll every 20 ms (lines after the first SKIP).
lab_wait_grep() {
    local file=$1 re=$2 timeout=$3 skip=${4:-0} deadline
    deadline=$(($(date +%s%N) + ${timeout%.*} * 1000000000))
    # Not `tail | grep -q`: grep's early exit would SIGPIPE tail, and pipefail
    # would read the match as a failure.
    until [[ -f $file ]] && grep -Eq -- "$re" < <(tail -n "+$((skip + 1))" "$file"); do
        (($(date +%s%N) < deadline)) || return 1
        sleep 0.02
    done
}

# lab_wait_pid PID TIMEOUT_S — wait for a child; on timeout TERM then KILL it, return 124.
lab_wait_pid() {
    local pid=$1 timeout=$2 i
    for ((i = 0; i < timeout * 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 124
    fi
    wait "$pid" 2>/dev/null
}

# lab_capture_start NS IF FILE [extra tcpdump args / filter...]
# Starts tcpdump (--immediate-mode -U -s 200 -n) in NS and returns once it is capturing.
# Sets LAB_CAPTURE_PID. `ip netns exec` execs, so the pid is tcpdump's own.
lab_capture_start() {
    local ns=$1 ifname=$2 file=$3
    shift 3
    LAB_CAPTURE_ERR=$(mktemp "${TMPDIR:-/tmp}/kaplab-tcpdump.XXXXXX")
    LAB_TMPFILES+=("$LAB_CAPTURE_ERR")
    rm -f "$file"
    lab_spawn "$ns" /dev/null "$LAB_CAPTURE_ERR" \
        tcpdump -Z root -n --immediate-mode -U -s 200 -i "$ifname" -w "$file" "$@"
    LAB_CAPTURE_PID=$LAB_SPAWN_PID
    if ! lab_wait_grep "$LAB_CAPTURE_ERR" '^tcpdump: listening on' 10; then
        cat "$LAB_CAPTURE_ERR" >&2
        kill -TERM "$LAB_CAPTURE_PID" 2>/dev/null || true
        lab_die "tcpdump did not start on $ns/$ifname"
        return 1
    fi
}

# lab_capture_stop [PID [ERRFILE]] — let the last packets land, SIGTERM (SIGINT is ignored by background jobs), wait; fails if
# tcpdump reports kernel drops.
lab_capture_stop() {
    local pid=${1:-$LAB_CAPTURE_PID} err=${2:-$LAB_CAPTURE_ERR} rc=0
    sleep 0.3
    kill -TERM "$pid" 2>/dev/null || true
    lab_wait_pid "$pid" 10 || rc=$?
    if ((rc != 0)) && ((rc != 143)); then
        cat "$err" >&2
        lab_die "tcpdump (pid $pid) exited with status $rc"
        return 1
    fi
    if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$err"; then
        cat "$err" >&2
        lab_die "tcpdump dropped packets"
        return 1
    fi
    rm -f "$err"
}

# Kill the processes running inside NS (only ours: nobody else uses these namespaces).
lab_ns_kill() {
    local ns=$1 pids
    pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086  # word splitting wanted: one pid per word
    kill -TERM $pids 2>/dev/null || true
    sleep 0.2
    pids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
    return 0
}

# shellcheck disable=SC2120  # arguments are optional
# lab_teardown [NS...] — default: every namespace this shell created (reverse order).
lab_teardown() {
    local ns i list=("$@") keep=()
    if ((${#list[@]} == 0)); then
        for ((i = ${#LAB_NAMESPACES[@]} - 1; i >= 0; i--)); do list+=("${LAB_NAMESPACES[i]}"); done
    fi
    for ns in "${list[@]}"; do
        if [[ -e /run/netns/$ns ]]; then
            lab_ns_kill "$ns"
            ip netns del "$ns" 2>/dev/null || lab_log "could not delete namespace $ns"
        fi
    done
    for ns in "${LAB_NAMESPACES[@]}"; do
        [[ -e /run/netns/$ns ]] && keep+=("$ns")
    done
    LAB_NAMESPACES=("${keep[@]}")
}

# lab_leftovers [BASE_PREFIX] — namespaces named BASE_PREFIX<pid>-... whose <pid> is no
# longer a running process (i.e. a run that died without tearing down).
lab_leftovers() {
    local base=${1:-$LAB_BASE_PREFIX} ns pid
    while read -r ns _; do
        [[ $ns == "$base"* ]] || continue
        pid=${ns#"$base"}
        pid=${pid%%-*}
        [[ $pid =~ ^[0-9]+$ ]] || continue
        # Owner 0: a lab kept until `down`, never abandoned.
        [[ $pid == 0 ]] && continue
        lab_alive "$pid" && continue
        printf '%s\n' "$ns"
    done < <(ip netns list 2>/dev/null)
}

lab_remove_leftovers() {
    local ns
    while read -r ns; do
        [[ -n $ns ]] || continue
        lab_log "removing leftover namespace $ns"
        # Another cleanup may have removed it meanwhile.
        lab_ns_kill "$ns" || true
        ip netns del "$ns" 2>/dev/null || true
    done < <(lab_leftovers "$@")
}

# lab_install_traps [EXTRA_CMD] — tear the labs down on exit, error or Ctrl-C.
lab_install_traps() {
    LAB_TRAP_EXTRA=${1:-}
    trap '_lab_on_exit' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_lab_on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n ${LAB_CAPTURE_PID:-} ]]; then kill -TERM "$LAB_CAPTURE_PID" 2>/dev/null || true; fi
    [[ -n ${LAB_TRAP_EXTRA:-} ]] && eval "$LAB_TRAP_EXTRA"
    # shellcheck disable=SC2119
    lab_teardown
    ((${#LAB_TMPFILES[@]} == 0)) || rm -f "${LAB_TMPFILES[@]}"
    exit "$rc"
}
