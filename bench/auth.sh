#!/usr/bin/env bash
# Foundation benchmark (issue 2): `{ __typename }` and `login` at 32 connections for 10 s each,
# against the release gateway (SQLite by default; BENCH_DATABASE_URL=postgres://… for PostgreSQL).
# Rate limits are raised for the run; argon2id (m=19456 KiB, t=2, p=1) is what login measures.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minispod-target}"
CONNS="${CONNS:-32}"
SECS="${SECS:-10}"
PORT=18081
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q --release --bin minispod
cargo bench -q --bench load --no-run 2>/dev/null
LOAD="$(ls -t "$CARGO_TARGET_DIR"/release/deps/load-* | grep -v '\.d$' | head -n1)"

DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$work/bench.db?mode=rwc}" MINISPOD_LISTEN="127.0.0.1:$PORT" \
  MINISPOD_SEED_DEMO=false MINISPOD_ADMIN_EMAIL=bench@minispod.local MINISPOD_ADMIN_PASSWORD=bench-password-1 \
  MINISPOD_RATE_LIMIT_EMAIL_PER_MIN=10000000 MINISPOD_RATE_LIMIT_IP_PER_MIN=10000000 RUST_LOG=warn \
  "$CARGO_TARGET_DIR/release/minispod" serve >"$work/gw.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done

echo '{"query":"{ __typename }"}' >"$work/typename.json"
echo '{"query":"mutation { login(email: \"bench@minispod.local\", password: \"bench-password-1\") { accessToken } }"}' >"$work/login.json"
"$LOAD" --label typename --url "http://127.0.0.1:$PORT/graphql" --body "$work/typename.json" --connections "$CONNS" --seconds "$SECS" --expect QueryRoot
"$LOAD" --label login --url "http://127.0.0.1:$PORT/graphql" --body "$work/login.json" --connections "$CONNS" --seconds "$SECS" --expect accessToken
