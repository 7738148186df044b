#!/usr/bin/env bash
# Installs what kaprobe needs to build, test and run its lab on a fresh Debian
# machine (as root). Safe to rerun: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for p in libpcap-dev tcpdump tshark iproute2 nftables iptables ethtool python3 time bsdutils liblwip-dev pkg-config gcc runsc libns3-dev g++; do
  have_pkg "$p" || need+=("$p")
done

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages (${need[*]}); run as root or install them" >&2
    exit 2
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 2; }

# The lab's userspace TCP stacks (scripts/lab/peers/), built once into
# target/lab-peers (lab.sh would build one on first use otherwise).
for d in scripts/lab/peers/*/; do
  name=$(basename "$d")
  bin=target/lab-peers/release/kaprobe-lab-$name
  [[ -x $bin ]] && continue
  echo "setup: building the lab's $name peer"
  if [[ -f $d/Cargo.toml ]]; then
    cargo build --release --quiet --manifest-path "$d/Cargo.toml" --target-dir target/lab-peers
  else
    bash "$d/build.sh" "$PWD/$bin"
  fi
done
