#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
need_rust
need_build_deps
cargo build --release --locked -p between-server -p between-cli
bin="$CARGO_TARGET_DIR/release"
for peers in 50 500; do
  "$bin/between" bench join --peers "$peers"
done
"$bin/between" bench media --seconds 20 --joins 10
"$bin/between" bench cpu --seconds 10
"$bin/between" bench sfu --peers 4,16,50
"$bin/between" bench sfu --peers 4,16 --video
# The same through one media port (the edge's relay hop).
"$bin/between" bench media --seconds 20 --joins 10 --udp-port 0
"$bin/between" bench sfu --peers 4,16,50 --udp-port 0
# Audio path CPU and device-to-device latency (PulseAudio virtual devices).
"$bin/between" bench audio --participants 4
"$bin/between" bench devices --clicks 20
# Screen sharing at 1080p on Xvfb: capture and encode cost, bitrate, capture-to-display.
"$bin/between" bench screen --seconds 10
# The desktop app (release .deb through tauri-cli, then the app under Xvfb + WebDriver).
command -v cargo-tauri >/dev/null 2>&1 || cargo install tauri-cli --version '^2' --locked
cargo tauri build --bundles deb
"$bin/between" bench app --starts 5 --bots 3 --seconds 10 --bot-nice 19 \
  --deb "$CARGO_TARGET_DIR/release/bundle/deb/Between_0.1.0_amd64.deb"
