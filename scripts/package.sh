#!/usr/bin/env bash
# Builds what users install on Linux: the .deb (Tauri's bundler) and the AppImage (our own
# packer and runtime, crates/appimage: Tauri's AppImage bundler downloads its tools from
# GitHub). Both land in $CARGO_TARGET_DIR/release/bundle/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
need_rust
need_build_deps
command -v cargo-tauri >/dev/null 2>&1 || cargo install tauri-cli --version '^2' --locked
# The binary scripts/run.sh runs, bundled as it is (Tauri's bundler only packs it).
build_app
cargo tauri bundle --bundles deb
cargo build --release --locked -p between-appimage
# The AppImage carries the same binary the .deb does.
scripts/appimage.sh "$CARGO_TARGET_DIR/release/between-app"
ls -l "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb "$CARGO_TARGET_DIR"/release/bundle/appimage/*.AppImage
