#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with warnings as errors, and all
# tests (unit, integration on captures, tshark cross-checks). Installs what it
# needs first. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== cargo test"
mkdir -p target
cargo test --all-targets 2>&1 | tee target/test-output.log
# One closing line over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' target/test-output.log

echo "== bench smoke (small capture: kaprobe's counts must equal the generator's)"
bash scripts/bench.sh --quick

echo "== live bench smoke (500 sessions against the lab's peer: every probe answered)"
if [[ $(id -u) -eq 0 ]]; then
    bash scripts/bench-live.sh --quick
else
    echo "skipped: not root (the live bench builds network namespaces)"
fi
