#!/usr/bin/env bash
# Runs Between locally: a development between-server and two bots that join one call, send each
# other a tone and the test pattern, record what they receive into ./artifacts/run, and chat,
# printing every event as JSON: a look at the engine without the app (./scripts/run.sh runs the app).
# Extra arguments go to the bots, e.g. ./scripts/run.sh --duration 30s
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

need_rust
need_build_deps
say "building (release)"
cargo build --release --locked -p between-server -p between-cli
bin="$CARGO_TARGET_DIR/release"

log=$(mktemp)
"$bin/between-server" --listen 127.0.0.1:0 --dev >"$log" 2>/dev/null &
server=$!
trap 'kill $server $ann $bob 2>/dev/null; wait 2>/dev/null; rm -f "$log"' EXIT
ann= bob=
for _ in $(seq 100); do
  url=$(sed -n 's/^between-server listening on //p' "$log")
  [ -n "$url" ] && break
  kill -0 $server 2>/dev/null || { echo "between-server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "between-server did not print its address" >&2; exit 1; }
say "server at $url (development key between-dev-key); Ctrl-C to stop"

duration=(--duration 10s)
[ $# -gt 0 ] && duration=()
"$bin/between" join demo --server "$url" --api-key between-dev-key \
  --data '{"name":"Ann"}' --say "Hello from Ann" --tone 440 --pattern --video-size 320x240 \
  --record artifacts/run/ann "${duration[@]}" "$@" | sed 's/^/ann: /' &
ann=$!
"$bin/between" join demo --server "$url" --api-key between-dev-key \
  --data '{"name":"Bob"}' --say "Hi Ann, Bob here" --tone 660 --pattern --video-size 320x240 \
  --record artifacts/run/bob "${duration[@]}" "$@" | sed 's/^/bob: /' &
bob=$!
wait $ann $bob
