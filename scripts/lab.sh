#!/usr/bin/env bash
# scripts/lab.sh — the kaprobe namespace lab: a client and a real Linux TCP peer, joined
# through a middlebox that routes (optionally NATs) and can break the path on command.
#
#   client 10.77.1.1         middlebox               server 10.77.101.2
#   fd77:0:0:1::1   veth-c — veth-mc  [m]  veth-ms — veth-s   fd77:0:0:101::2
#   (namespace …-c)          .254 / ::254            (namespace …-s, peer.py on port 7077)
#
# Usage (root):
#   lab.sh up [NAME] [--nat] [--peer linux|gvisor|smoltcp|lwip|ns3] [--owner PID] [--sysctl KEY=VALUE]...
#                                     bring a lab up (prints its name); the server namespace
#                                     runs an echo server on port 7077: scripts/lab/peer.py
#                                     on the kernel's TCP (linux) or under gVisor's netstack
#                                     (gvisor: runsc, which takes the veth over), or smoltcp's,
#                                     lwIP's or ns-3's (the last two IPv4 only) on a TAP
#                                     bridged with the namespace's veth (scripts/lab/peers/)
#   lab.sh down NAME                  tear it down (processes, namespaces, state)
#   lab.sh list                       every lab, with its owner and state: live, kept or abandoned
#   lab.sh cleanup                    remove abandoned labs (their owner process is gone)
#   lab.sh env NAME                   KEY=VALUE lines: namespaces, interfaces, addresses
#   lab.sh status NAME                faults, processes, middlebox counters, conntrack
#   lab.sh server NAME [PEER ARGS]    restart the peer with its options: peer.py server ones
#                                     (linux, gvisor), e.g. --idle 1 --intvl 1 --cnt 3 (seconds);
#                                     smoltcp: --keepalive MS --timeout MS; lwip: --idle MS
#                                     --intvl MS --cnt N; ns3: none (ns-3 has no keepalive)
#   lab.sh log NAME                   the server's event log (JSON lines, what the app saw)
#   lab.sh client NAME [-6] [PEER ARGS]
#                                     run peer.py client in the client namespace against the
#                                     server (IPv6 with -6); prints what the app saw as JSON
#   lab.sh capture NAME start FILE [--at c|mc|ms|s] [FILTER...]
#                                     tcpdump (default: client veth, 'tcp') into FILE and,
#                                     as text, into <state>/capture.ID.txt; prints ID
#   lab.sh capture NAME stop [ID]     stop one capture (default: all of this lab's)
#   lab.sh fault NAME blackhole       the server drops everything in and out (crashed host)
#   lab.sh fault NAME reboot          the server's sockets vanish without a FIN or RST on
#                                     the wire, then the server starts again: the next
#                                     segment of an old connection gets a RST
#   lab.sh fault NAME delay D         middlebox delays packets towards the server by D (50ms)
#   lab.sh fault NAME loss P%         middlebox drops P% of forwarded packets, each direction
#   lab.sh fault NAME idle-timeout T [drop|reset]
#                                     middlebox forgets TCP flows idle longer than T seconds
#                                     (conntrack), then drops their packets (or RSTs them)
#   lab.sh heal NAME [blackhole|delay|loss|idle-timeout|all]
#                                     undo a fault (default all)
#   lab.sh exec NAME c|m|s CMD...     run a command in a namespace
#
# Names: [A-Za-z0-9_.]+; namespaces are kaprobe-lab-<owner pid>-<NAME>-{c,m,s}. A lab
# brought up without --owner is "kept" (owner 0): it lives until `down`. With --owner PID
# it belongs to that process (tests and scripts pass their own pid); once it is gone the
# lab is "abandoned" and `cleanup` removes it. Two `up` of one name never both succeed. State (pids, logs,
# captures' text) lives in $KAPROBE_LAB_STATE/<NAME> (default /run/kaprobe-lab).
# Only addresses inside the lab's own namespaces are ever used.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEER=$HERE/lab/peer.py
# Userspace TCP stacks as the server peer, built into target/lab-peers on first use.
PEERS_SRC=$HERE/lab/peers
PEERS_BIN=$HERE/../target/lab-peers/release
PYTHON=${PYTHON:-python3}
PORT=7077
STATE_ROOT=${KAPROBE_LAB_STATE:-/run/kaprobe-lab}
# shellcheck source=lib/lab.sh
source "$HERE/lib/lab.sh"

die() {
    printf 'lab.sh: %s\n' "$*" >&2
    exit 1
}
usage() { sed -n '2,/^# shellcheck/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------- lookup

valid_name() { [[ $1 =~ ^[A-Za-z0-9_.]+$ ]] || die "bad lab name '$1' (letters, digits, _ and . only)"; }

# owners_of NAME — the owner pid of every namespace set called NAME (normally one)
owners_of() {
    local ns
    while read -r ns _; do
        if [[ $ns =~ ^${LAB_BASE_PREFIX}([0-9]+)-(.+)-[cms]$ ]] && [[ ${BASH_REMATCH[2]} == "$1" ]]; then
            printf '%s\n' "${BASH_REMATCH[1]}"
        fi
    done < <(ip netns list 2>/dev/null) | sort -u
}

# find_lab NAME — set LAB_NAME, LAB_OWNER, ST and the lab_routed_vars variables; die if absent
find_lab() {
    local owners
    valid_name "$1"
    owners=$(owners_of "$1")
    [[ -n $owners ]] || die "no lab called '$1' (lab.sh list)"
    [[ $owners != *$'\n'* ]] || die "several labs called '$1' (owners: $(echo "$owners" | tr '\n' ' '))"
    LAB_NAME=$1
    LAB_OWNER=$owners
    lab_routed_vars "${LAB_BASE_PREFIX}${LAB_OWNER}-${LAB_NAME}-" 1
    ST=$STATE_ROOT/$LAB_NAME
    mkdir -p "$ST"
}

# owner_state PID — live, abandoned, or kept (owner 0: no owner, lives until `down`)
owner_state() {
    if [[ $1 == 0 ]]; then
        echo kept
    elif lab_alive "$1"; then
        echo live
    else
        echo abandoned
    fi
}

# ---------------------------------------------------------------------------- server

server_pid() { cat "$ST/server.pid" 2>/dev/null || true; }

server_stop() {
    local pid
    pid=$(server_pid)
    if [[ -n $pid ]] && lab_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        lab_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$ST/server.pid"
}

# peer_stack — the server's TCP stack: linux (the kernel) or a userspace one
peer_stack() { cat "$ST/peer" 2>/dev/null || echo linux; }

# on_tap STACK — the stack runs on a TAP bridged with the veth (scripts/lab/peers/); linux
# uses the veth itself, and gvisor's runsc takes it over
on_tap() { [[ $1 != linux && $1 != gvisor ]]; }

# peer_desc — what runs as the server, for people
peer_desc() {
    case $(peer_stack) in
    linux) echo peer.py ;;
    gvisor) echo "peer.py under gVisor (runsc)" ;;
    *) peer_stack ;;
    esac
}

# peer_binary STACK — a userspace stack's echo server, built on first use
peer_binary() {
    local bin=$PEERS_BIN/kaprobe-lab-$1
    if [[ ! -x $bin ]]; then
        lab_log "building the $1 peer (once)"
        if [[ -f $PEERS_SRC/$1/Cargo.toml ]]; then
            cargo build --release --quiet --manifest-path "$PEERS_SRC/$1/Cargo.toml" \
                --target-dir "$PEERS_BIN/.." >&2 || die "could not build the $1 peer (scripts/setup.sh)"
        else
            bash "$PEERS_SRC/$1/build.sh" "$bin" >&2 || die "could not build the $1 peer (scripts/setup.sh)"
        fi
    fi
    printf '%s\n' "$bin"
}

# peer_tap_setup — the server namespace hands its link to a userspace stack: a TAP
# bridged with the veth, which keeps no address (else the kernel would answer first)
peer_tap_setup() {
    lab_exec "$LAB_NS_S" ip addr flush dev "$LAB_IF_S"
    lab_exec "$LAB_NS_S" ip tuntap add dev tap0 mode tap
    lab_exec "$LAB_NS_S" ip link add br0 type bridge
    lab_exec "$LAB_NS_S" ip link set "$LAB_IF_S" master br0
    lab_exec "$LAB_NS_S" ip link set tap0 master br0
    lab_exec "$LAB_NS_S" ip link set tap0 up
    lab_exec "$LAB_NS_S" ip link set br0 up
    lab_offloads_off "$LAB_NS_S" tap0
    lab_offloads_off "$LAB_NS_S" br0
}

# gvisor_bundle ARGS... — an OCI bundle in $ST/gvisor that runs peer.py with ARGS inside
# gVisor, in the server namespace, on the host's root file system read-only (the lab state
# directory writable, for the event log)
gvisor_bundle() {
    mkdir -p "$ST/gvisor"
    "$PYTHON" - "$ST/gvisor/config.json" "/run/netns/$LAB_NS_S" "$ST" "$PYTHON" "$PEER" "$@" <<'PY'
import json, shutil, sys
out, netns, state, python, *args = sys.argv[1:]
caps = ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"]
json.dump({
    "ociVersion": "1.0.0",
    "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/usr/bin:/bin"],
                "args": [shutil.which(python)] + args,
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
    "root": {"path": "/", "readonly": True},
    "hostname": "gvisor-peer",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": state, "type": "bind", "source": state, "options": ["rbind", "rw"]}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
              + [{"type": "network", "path": netns}]},
}, open(out, "w"), indent=1)
PY
}

# server_start — start the echo server with the arguments saved in $ST/server.args
server_start() {
    local args=() pid stack skip listening_pid
    if [[ -s $ST/server.args ]]; then mapfile -t args <"$ST/server.args"; fi
    stack=$(peer_stack)
    skip=0
    [[ ! -f $ST/server.jsonl ]] || skip=$(wc -l <"$ST/server.jsonl")
    case $stack in
    linux)
        lab_spawn "$LAB_NS_S" /dev/null "$ST/server.err" </dev/null \
            "$PYTHON" "$PEER" server --addr :: --port "$PORT" --status "$ST/server.jsonl" --lifetime 0 \
            ${args[@]+"${args[@]}"}
        ;;
    gvisor)
        command -v runsc >/dev/null || die "the gvisor peer needs runsc (scripts/setup.sh installs it)"
        # runsc moves the veth's addresses and routes into its own stack and does not
        # give them back when it exits: restore them for this run.
        lab_exec "$LAB_NS_S" ip addr replace "$LAB_S4/24" dev "$LAB_IF_S"
        lab_exec "$LAB_NS_S" ip -6 addr replace "$LAB_S6/64" dev "$LAB_IF_S" nodad
        lab_exec "$LAB_NS_S" ip route replace default via "$LAB_MS4"
        lab_exec "$LAB_NS_S" ip -6 route replace default via "$LAB_MS6"
        gvisor_bundle server --addr :: --port "$PORT" --status "$ST/server.jsonl" --lifetime 0 \
            ${args[@]+"${args[@]}"}
        rm -rf "$ST/runsc"
        # This runsc refuses --network=sandbox when it finds /proc/sys/net/core/rmem_default,
        # its sign of the root namespace, which kernel 6.18 shows in every namespace: hide
        # /proc/sys/net in a mount namespace of its own. ptrace: KVM is not available here.
        # shellcheck disable=SC2016  # $@ is the inner shell's
        lab_spawn "$LAB_NS_S" /dev/null "$ST/server.err" </dev/null \
            unshare -m sh -c 'mount -t tmpfs none /proc/sys/net && exec "$@"' sh \
            runsc --root "$ST/runsc" --network=sandbox --ignore-cgroups --platform=ptrace \
            run --bundle "$ST/gvisor" peer
        ;;
    *)
        local bin
        bin=$(peer_binary "$stack") || exit 1
        lab_spawn "$LAB_NS_S" /dev/null "$ST/server.err" </dev/null \
            "$bin" --tap tap0 --ip "$LAB_S4/24" --gw "$LAB_MS4" \
            --ip6 "$LAB_S6/64" --gw6 "$LAB_MS6" --port "$PORT" --status "$ST/server.jsonl" \
            ${args[@]+"${args[@]}"}
        ;;
    esac
    pid=$LAB_SPAWN_PID
    echo "$pid" >"$ST/server.pid"
    listening_pid=$pid
    [[ $stack != gvisor ]] || listening_pid=1 # the sandbox's own pid namespace
    if ! lab_wait_grep "$ST/server.jsonl" "\"event\":\"listening\",[^}]*\"pid\":$listening_pid," 15 "$skip"; then
        cat "$ST/server.err" >&2
        die "the peer server did not start in $LAB_NS_S"
    fi
}

# ---------------------------------------------------------------------------- faults

fault_set() { # fault_set KIND [DESCRIPTION] — remember an active fault (one line per kind)
    { grep -v "^$1\\b" "$ST/faults" 2>/dev/null || true; [[ -z ${2:-} ]] || printf '%s\n' "$2"; } >"$ST/faults.new"
    mv -f "$ST/faults.new" "$ST/faults"
}

reboot_server() {
    local pid
    pid=$(server_pid)
    if [[ -z $pid ]] || ! lab_alive "$pid"; then die "the lab's server is not running (lab.sh server $LAB_NAME)"; fi
    # Nothing the dying sockets send may leave the host: their RSTs are dropped.
    printf 'table inet kaplab_reboot {\n  chain out { type filter hook output priority -20; policy drop; }\n}\n' |
        lab_exec "$LAB_NS_S" nft -f - || die "nft failed in $LAB_NS_S"
    kill -USR1 "$pid"
    lab_wait_grep "$ST/server.jsonl" "\"event\":\"vanished\",[^}]*\"pid\":$pid\\b" 5 ||
        die "the server did not vanish"
    lab_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    lab_exec "$LAB_NS_S" nft delete table inet kaplab_reboot
    server_start
}

cmd_fault() {
    local kind=${1:-} secs
    [[ -n $kind ]] || die "fault: which one? blackhole reboot delay loss idle-timeout"
    shift
    # These act on the server namespace's kernel, which a userspace stack bypasses (its
    # frames are bridged, and it does not "reboot" on a signal).
    if [[ $kind == blackhole || $kind == reboot ]] && [[ $(peer_stack) != linux ]]; then
        die "fault $kind needs the linux peer; with --peer $(peer_stack) use 'fault $LAB_NAME loss 100%' (at the middlebox)"
    fi
    case $kind in
    blackhole)
        lab_blackhole "$LAB_NS_S" both || exit 1
        fault_set blackhole "blackhole (server drops all input and output)"
        ;;
    reboot)
        reboot_server
        lab_log "$LAB_NAME: server rebooted: its connections are gone without a FIN or RST on the wire; listening again (pid $(server_pid))"
        return 0
        ;;
    delay)
        (($# == 1)) || die "usage: lab.sh fault NAME delay DURATION (e.g. 50ms)"
        lab_delay "$LAB_NS_M" "$LAB_IF_MS" "$1" "$ST/delay" || exit 1
        fault_set delay "delay $1 (middlebox -> server, $(cat "$ST/delay.impl"))"
        ;;
    loss)
        (($# == 1)) || die "usage: lab.sh fault NAME loss PERCENT (e.g. 10%)"
        lab_loss "$LAB_NS_M" "$1" || exit 1
        fault_set loss "loss ${1%\%}% (middlebox, each direction)"
        ;;
    idle-timeout)
        (($# >= 1 && $# <= 2)) || die "usage: lab.sh fault NAME idle-timeout SECONDS [drop|reset]"
        secs=${1%s}
        lab_idle_timeout "$LAB_NS_M" "$secs" "${2:-drop}" || exit 1
        fault_set idle-timeout "idle-timeout ${secs}s ${2:-drop} (middlebox conntrack)"
        ;;
    *) die "unknown fault '$kind' (blackhole reboot delay loss idle-timeout)" ;;
    esac
    lab_log "$LAB_NAME: fault $(grep "^$kind\\b" "$ST/faults")"
}

cmd_heal() {
    local kind=${1:-all}
    case $kind in
    blackhole | all) lab_unblackhole "$LAB_NS_S" && fault_set blackhole ;;&
    delay | all) lab_delay_off "$LAB_NS_M" "$LAB_IF_MS" "$ST/delay" && fault_set delay ;;&
    loss | all) lab_loss_off "$LAB_NS_M" && fault_set loss ;;&
    idle-timeout | all) lab_idle_timeout_off "$LAB_NS_M" && fault_set idle-timeout ;;&
    blackhole | delay | loss | idle-timeout | all) ;;
    *) die "unknown fault '$kind' (blackhole delay loss idle-timeout all)" ;;
    esac
    lab_log "$LAB_NAME: healed $kind"
}

# ---------------------------------------------------------------------------- captures

cmd_capture() {
    local op=${1:-} file at=c ns ifname id pid f rc
    shift || true
    case $op in
    start)
        (($# >= 1)) || die "usage: lab.sh capture NAME start FILE [--at c|mc|ms|s] [FILTER...]"
        file=$1
        shift
        if [[ ${1:-} == --at ]]; then
            at=${2:?--at needs c, mc, ms or s}
            shift 2
        fi
        case $at in
        c) ns=$LAB_NS_C ifname=$LAB_IF_C ;;
        mc) ns=$LAB_NS_M ifname=$LAB_IF_MC ;;
        ms) ns=$LAB_NS_M ifname=$LAB_IF_MS ;;
        s) ns=$LAB_NS_S ifname=$LAB_IF_S ;;
        *) die "--at must be c, mc, ms or s" ;;
        esac
        (($# > 0)) || set -- tcp
        [[ $file == /* ]] || file=$PWD/$file
        id=1
        while [[ -e $ST/capture.$id.pid || -e $ST/capture.$id.txt ]]; do id=$((id + 1)); done
        rm -f "$file"
        : >"$ST/capture.$id.err"
        lab_spawn "$ns" "$ST/capture.$id.txt" "$ST/capture.$id.err" </dev/null \
            tcpdump -Z root -n --immediate-mode -U -l -s 200 -i "$ifname" -w "$file" --print "$@"
        echo "$LAB_SPAWN_PID" >"$ST/capture.$id.pid"
        if ! lab_wait_grep "$ST/capture.$id.err" '^tcpdump: listening on' 10; then
            cat "$ST/capture.$id.err" >&2
            kill -TERM "$LAB_SPAWN_PID" 2>/dev/null || true
            rm -f "$ST/capture.$id.pid"
            die "tcpdump did not start on $ns/$ifname"
        fi
        lab_log "$LAB_NAME: capture $id on $at ($ifname) -> $file (text: $ST/capture.$id.txt)"
        printf '%s\n' "$id"
        ;;
    stop)
        rc=0
        sleep 0.3 # let the last packets land
        for f in "$ST"/capture.*.pid; do
            [[ -e $f ]] || continue
            id=${f##*/capture.}
            id=${id%.pid}
            [[ -z ${1:-} || $1 == "$id" ]] || continue
            pid=$(cat "$f")
            kill -TERM "$pid" 2>/dev/null || true
            lab_wait_gone "$pid" 10 || { kill -KILL "$pid" 2>/dev/null || true; rc=1; }
            rm -f "$f"
            if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$ST/capture.$id.err"; then
                cat "$ST/capture.$id.err" >&2
                lab_log "capture $id: tcpdump dropped packets"
                rc=1
            fi
            lab_log "$LAB_NAME: capture $id stopped: $(grep -E 'packets captured' "$ST/capture.$id.err" || echo '?')"
        done
        return "$rc"
        ;;
    *) die "usage: lab.sh capture NAME start FILE [--at c|mc|ms|s] [FILTER...] | stop [ID]" ;;
    esac
}

# ---------------------------------------------------------------------------- up / down

cmd_up() {
    local name="" nat="" owner=0 sysctls=() wanted="" stack=linux
    while (($# > 0)); do
        case $1 in
        --nat) nat=nat ;;
        --owner) owner=${2:?--owner needs a pid}; shift ;;
        --peer)
            stack=${2:?--peer needs a stack: linux, gvisor, smoltcp, lwip or ns3}
            if on_tap "$stack" && [[ ! -d $PEERS_SRC/$stack ]]; then
                die "up: unknown peer stack '$stack' (linux, gvisor, smoltcp, lwip, ns3)"
            fi
            shift
            ;;
        --sysctl) sysctls+=("${2:?--sysctl needs KEY=VALUE}"); shift ;;
        -*) die "up: unknown option $1" ;;
        *) [[ -z $name ]] || die "up: one name only"; name=$1 ;;
        esac
        shift
    done
    if [[ ! $owner =~ ^[0-9]+$ ]] || { [[ $owner != 0 ]] && ! lab_alive "$owner"; }; then
        die "owner $owner is not a running process"
    fi
    if [[ -z $name ]]; then
        name=lab$(date +%H%M%S)$((RANDOM % 100))
        wanted=" (generated)"
    fi
    valid_name "$name"
    # One `up` at a time checks the name and builds: two of one name cannot both pass.
    mkdir -p "$STATE_ROOT"
    exec 9>"$STATE_ROOT/.up.lock"
    flock 9
    [[ -z $(owners_of "$name") ]] || die "a lab called '$name' exists already"
    LAB_NAME=$name
    LAB_OWNER=$owner
    ST=$STATE_ROOT/$name
    lab_routed_vars "${LAB_BASE_PREFIX}${owner}-${name}-" 1
    # Half-built labs are torn down on any failure (or Ctrl-C) before `up` returns.
    trap 'lab_teardown; rm -rf "$ST"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    lab_routed_build $nat ${sysctls[@]+"${sysctls[@]}"} || exit 1
    # The namespaces exist: another `up` of this name now fails its check. (Released
    # before any long-lived process starts, which would inherit the lock.)
    exec 9>&-
    # (only now: `cleanup` removes state directories of labs without namespaces)
    rm -rf "$ST"
    mkdir -p "$ST"
    printf '%s\n' "$owner" >"$ST/owner"
    printf '%s\n' "${nat:-routed}" >"$ST/mode"
    : >"$ST/server.args"
    : >"$ST/faults"
    printf '%s\n' "$stack" >"$ST/peer"
    if on_tap "$stack"; then peer_tap_setup; fi
    server_start
    trap - EXIT INT TERM
    if [[ $owner == 0 ]]; then
        lab_log "lab $name$wanted is up, kept until lab.sh down $name:"
    else
        lab_log "lab $name$wanted is up, owner pid $owner:"
    fi
    lab_log "  client  $LAB_NS_C  $LAB_C4 $LAB_C6 ($LAB_IF_C)"
    lab_log "  middle  $LAB_NS_M  $LAB_MC4 | $LAB_MS4 (routes${nat:+, NAT towards the server})"
    if ! on_tap "$stack"; then
        lab_log "  server  $LAB_NS_S  $LAB_S4 $LAB_S6 ($LAB_IF_S), $(peer_desc) echo server on port $PORT"
    else
        lab_log "  server  $LAB_NS_S  $LAB_S4 $LAB_S6 ($stack on tap0, bridged with $LAB_IF_S), echo server on port $PORT"
    fi
    printf '%s\n' "$name"
}

cmd_down() {
    find_lab "$1"
    lab_teardown "$LAB_NS_C" "$LAB_NS_M" "$LAB_NS_S"
    local left
    left=$(ip netns list | awk -v p="${LAB_BASE_PREFIX}${LAB_OWNER}-${LAB_NAME}-" 'index($1, p) == 1 { print $1 }')
    [[ -z $left ]] || die "could not delete: $left"
    rm -rf "$ST"
    lab_log "lab $LAB_NAME is down"
}

cmd_list() {
    local ns owner name role state key
    declare -A seen=()
    printf '%-24s %-8s %-10s %s\n' NAME OWNER STATE NAMESPACES
    while read -r ns _; do
        [[ $ns =~ ^${LAB_BASE_PREFIX}([0-9]+)-(.+)-([cms])$ ]] || continue
        owner=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]} role=${BASH_REMATCH[3]}
        key="$owner $name"
        seen[$key]="${seen[$key]:-}$role"
    done < <(ip netns list 2>/dev/null)
    for key in "${!seen[@]}"; do
        read -r owner name <<<"$key"
        state=$(owner_state "$owner")
        printf '%-24s %-8s %-10s %s\n' "$name" "$owner" "$state" \
            "$(printf '%s' "${seen[$key]}" | fold -w1 | sort | tr -d '\n')"
    done | sort
}

cmd_cleanup() {
    local d
    # One at a time, and never while an `up` builds (tests run cleanups in parallel).
    mkdir -p "$STATE_ROOT"
    exec 9>"$STATE_ROOT/.up.lock"
    flock 9
    lab_remove_leftovers "$LAB_BASE_PREFIX"
    # State directories of labs that no longer exist.
    for d in "$STATE_ROOT"/*; do
        [[ -d $d ]] || continue
        [[ -n $(owners_of "${d##*/}") ]] || { rm -rf "$d"; lab_log "removed stale state ${d##*/}"; }
    done
}

cmd_env() {
    printf '%s\n' "LAB_NAME=$LAB_NAME" "LAB_OWNER=$LAB_OWNER" "LAB_STATE=$ST" "LAB_PORT=$PORT" \
        "LAB_MODE=$(cat "$ST/mode" 2>/dev/null || echo routed)" \
        "LAB_NS_C=$LAB_NS_C" "LAB_NS_M=$LAB_NS_M" "LAB_NS_S=$LAB_NS_S" \
        "LAB_IF_C=$LAB_IF_C" "LAB_IF_MC=$LAB_IF_MC" "LAB_IF_MS=$LAB_IF_MS" "LAB_IF_S=$LAB_IF_S" \
        "LAB_C4=$LAB_C4" "LAB_C6=$LAB_C6" "LAB_S4=$LAB_S4" "LAB_S6=$LAB_S6" \
        "LAB_MC4=$LAB_MC4" "LAB_MC6=$LAB_MC6" "LAB_MS4=$LAB_MS4" "LAB_MS6=$LAB_MS6"
}

cmd_status() {
    local pid f
    echo "lab $LAB_NAME (owner $LAB_OWNER, $(cat "$ST/mode" 2>/dev/null || echo routed))"
    pid=$(server_pid)
    if [[ -n $pid ]] && lab_alive "$pid"; then
        echo "  server: pid $pid, $(peer_desc) echo server on port $PORT $(if [[ -s $ST/server.args ]]; then tr '\n' ' ' <"$ST/server.args"; else echo "(no keepalive)"; fi)"
    else
        echo "  server: not running"
    fi
    if [[ -s $ST/faults ]]; then sed 's/^/  fault: /' "$ST/faults"; else echo "  faults: none"; fi
    for f in "$ST"/capture.*.pid; do
        [[ -e $f ]] && echo "  capture ${f##*/capture.}: pid $(cat "$f")" | sed 's/\.pid:/:/'
    done
    echo "  middlebox counters:"
    lab_exec "$LAB_NS_M" nft list counters 2>/dev/null |
        awk '/counter/ { name = $2 } /packets/ { printf "    %-16s %s packets\n", name, $2 }'
    echo "  middlebox conntrack (tcp):"
    # shellcheck disable=SC2016  # awk program
    lab_exec "$LAB_NS_M" awk '$3 == "tcp" { n++; print "    " $0 } END { if (!n) print "    (none)" }' \
        /proc/net/nf_conntrack 2>/dev/null || true
}

# ---------------------------------------------------------------------------- main

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] || { usage >&2; exit 2; }
    shift
    case $cmd in
    -h | --help | help) usage; return 0 ;;
    esac
    lab_require_root
    lab_require_tools ip nft ethtool tcpdump "$PYTHON"
    case $cmd in
    up) cmd_up "$@" ;;
    list) cmd_list ;;
    cleanup) cmd_cleanup ;;
    down | env | status | server | log | client | capture | fault | heal | exec)
        (($# >= 1)) || die "$cmd: which lab? (lab.sh list)"
        find_lab "$1"
        shift
        case $cmd in
        down) cmd_down "$LAB_NAME" ;;
        env) cmd_env ;;
        status) cmd_status ;;
        server)
            printf '%s\n' "$@" >"$ST/server.args"
            (($# > 0)) || : >"$ST/server.args"
            server_stop
            server_start
            lab_log "$LAB_NAME: $(peer_desc) server (pid $(server_pid)) $*"
            ;;
        log) cat "$ST/server.jsonl" ;;
        client)
            local addr=$LAB_S4
            if [[ ${1:-} == -6 ]]; then
                addr=$LAB_S6
                shift
            fi
            exec ip netns exec "$LAB_NS_C" "$PYTHON" "$PEER" client --addr "$addr" --port "$PORT" "$@"
            ;;
        capture) cmd_capture "$@" ;;
        fault) cmd_fault "$@" ;;
        heal) cmd_heal "$@" ;;
        exec)
            local role=${1:-}
            shift || true
            (($# > 0)) || die "usage: lab.sh exec NAME c|m|s CMD..."
            case $role in
            c) exec ip netns exec "$LAB_NS_C" "$@" ;;
            m) exec ip netns exec "$LAB_NS_M" "$@" ;;
            s) exec ip netns exec "$LAB_NS_S" "$@" ;;
            *) die "exec: role must be c, m or s" ;;
            esac
            ;;
        esac
        ;;
    *) usage >&2; exit 2 ;;
    esac
}

main "$@"
