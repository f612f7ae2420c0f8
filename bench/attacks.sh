#!/usr/bin/env bash
# Replays the denial-of-service attacks of issue 9 against a gateway binary on a fresh SQLite
# database, on loopback only, and prints each attack's time and the gateway's RSS/HWM before and
# after (bench/attacks/, one module per attack).
# Usage: bench/attacks.sh [gateway binary] [attacks, comma-separated]
#   default binary: $CARGO_TARGET_DIR/release/minispod (or target/release/minispod)
#   knobs: BOMB_DEPTH=23 BOMB_REPEAT=3 FLOOD_REQUESTS=500 FLOOD_PAD_BYTES=1000000
#          FLOOD_CONCURRENCY=8 ATTACK_TIMEOUT_SECS=120 PROFILE=debug|release (of the attack client)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
GATEWAY="${1:-$TARGET_DIR/release/minispod}"
ATTACKS="${2:-fragment-bomb,cache-flood,silent-sockets,revoked-sockets}"
PROFILE="${PROFILE:-release}"
[ -x "$GATEWAY" ] || { echo "no gateway binary at $GATEWAY (build it, or pass its path)" >&2; exit 2; }

work="$(mktemp -d)"
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$PROFILE" = release ]; then cargo build -q --release --example attacks; else cargo build -q --example attacks; fi
CLIENT="$TARGET_DIR/$PROFILE/examples/attacks"

# Port 0: the gateway picks a free loopback port and logs it.
DATABASE_URL="sqlite://$work/attacks.db?mode=rwc" MINISPOD_LISTEN=127.0.0.1:0 \
  MINISPOD_ADMIN_PASSWORD=attacks-admin-password RUST_LOG=info \
  "$GATEWAY" serve >"$work/gateway.log" 2>&1 &
gateway_pid=$!
url=""
for _ in $(seq 1 300); do
  url="$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$work/gateway.log" | head -n1 | sed 's/listening on //' || true)"
  [ -n "$url" ] && curl -sf "$url/readyz" >/dev/null && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the gateway did not start" >&2; cat "$work/gateway.log" >&2; exit 1; }

echo "gateway: $GATEWAY, pid $gateway_pid, $url"
"$CLIENT" --url "$url" --pid "$gateway_pid" --gateway "$GATEWAY" --attacks "$ATTACKS"
