#!/usr/bin/env bash
# Builds the lab's ns-3 peer into $1 (Debian libns3-dev, ns-3.37; its pkg-config files name
# a libgsl that is not installed, so the libraries are named here).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:?usage: build.sh OUTPUT}
mkdir -p "$(dirname "$out")"
# Built beside, then renamed: two labs starting at once never run a half-written binary.
g++ -std=c++17 -O1 -Wall -Werror -o "$out.$$" main.cc \
    -lns3-core -lns3-network -lns3-internet -lns3-fd-net-device
mv -f "$out.$$" "$out"
