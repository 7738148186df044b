#!/usr/bin/env bash
# The main job, end to end: build kaprobe and verify the captures recorded from
# real Linux kernels in captures/ — keepalive answered, a blackholed peer timed
# out, a rebooted peer's RST, and the look-alikes Wireshark mistakes for probes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --quiet
kaprobe=target/release/kaprobe

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || echo "(exit $?)"; }

step "$kaprobe" verify captures/linux_ka_answered_v4.pcap
step "$kaprobe" verify --expect idle=1s,interval=1s,count=3 captures/linux_ka_blackhole_abort.pcap
step "$kaprobe" verify captures/linux_ka_reboot_rst.pcap
step "$kaprobe" verify -q captures/linux_retrans_1byte.pcap captures/linux_zero_window.pcap
if command -v tshark >/dev/null; then
  printf '\nWireshark calls these Keep-Alive (kaprobe: retransmissions and zero-window probes):\n'
  for f in captures/linux_retrans_1byte.pcap captures/linux_zero_window.pcap; do
    printf '  %s: %s frames\n' "$f" "$(tshark -n -r "$f" -Y tcp.analysis.keep_alive 2>/dev/null | wc -l)"
  done
fi
