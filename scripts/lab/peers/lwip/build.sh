#!/usr/bin/env bash
# Builds the lab's lwIP peer into $1 (Debian liblwip-dev: lwIP 2.1 with its unix port).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:?usage: build.sh OUTPUT}
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2046  # pkg-config prints several words
# Built beside, then renamed: two labs starting at once never run a half-written binary.
cc -O2 -Wall -Werror -o "$out.$$" main.c $(pkg-config --cflags --libs lwip) -lpthread
mv -f "$out.$$" "$out"
