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
cargo test --all-targets
# cargo test --all-targets skips doctests; run them too.
cargo test --doc --quiet
