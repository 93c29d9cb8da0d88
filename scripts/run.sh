#!/usr/bin/env bash
# Runs the Between desktop app (release build). With no server configured in its settings it
# hosts its own on this machine, so two copies of the app (or the app and `between join` bots,
# see scripts/demo-bots.sh) can call each other at once.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

need_rust
need_build_deps
say "building the app (release; the first build takes about 18 minutes on 2 cores)"
build_app
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "No display: run this from a desktop session (or set DISPLAY, e.g. under Xvfb)." >&2
  exit 1
fi
say "starting Between"
exec "$CARGO_TARGET_DIR/release/between-app" "$@"
