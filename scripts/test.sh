#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with warnings as errors, and all tests
# (unit, integration against a real server, the CLI end to end). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

need_rust
need_build_deps
need_test_deps

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "page unit tests (node --test)"
node --test ui/tests/
say "cargo test"
cargo test --workspace --locked
