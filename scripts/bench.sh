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
# The desktop app: the .deb and the AppImage, the blank-window floor, then the app under
# Xvfb + WebDriver.
./scripts/package.sh
cargo build --release --locked --example blank_window --features baseline
"$bin/between" bench app --starts 3 --bots 3 --seconds 10 --bot-nice 19 \
  --deb "$CARGO_TARGET_DIR/release/bundle/deb/Between_0.1.0_amd64.deb" \
  --appimage "$CARGO_TARGET_DIR/release/bundle/appimage/Between_0.1.0_amd64.AppImage" \
  --baseline "$CARGO_TARGET_DIR/release/examples/blank_window"
