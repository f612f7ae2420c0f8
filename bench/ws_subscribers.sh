#!/usr/bin/env bash
# N concurrent graphql-transport-ws podMetrics subscribers (1 s interval) against the fake cluster.
# Usage: bench/ws_subscribers.sh [1000,5000,10000] [seconds per run]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minispod-target}"
SUBSCRIBERS="${1:-1000,5000,10000}"
SECONDS_PER_RUN="${2:-20}"

# Each subscriber is one socket in the client and one in the gateway (a child of the client).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true
echo "file descriptor limit: $(ulimit -n)" >&2

cargo build -q --release --bin minispod --example ws-subscribers
GATEWAY_BIN="$CARGO_TARGET_DIR/release/minispod" \
  "$CARGO_TARGET_DIR/release/examples/ws-subscribers" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_PER_RUN"
