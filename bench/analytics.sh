#!/usr/bin/env bash
# The admin analytics on a large ledger: 10,000 users, one subscription each, 1,000,000 ledger
# rows spread over the last 12 months (60 % renewals, top-ups, refunds, reversals, 1 % FAILED),
# generated in SQL (generate_series on PostgreSQL, a recursive CTE on SQLite). A release gateway
# runs against each database; after 5 warm-up requests, N sequential requests of each query:
#   revenue(from: now - 90 days, to: now, bucket: DAY, timeZone: "Asia/Jakarta")  (+ byService)
#   topSpenders(from: now - 30 days, to: now, first: 10)
# and their p50/p95. Target: p50 < 100 ms on PostgreSQL.
#   bench/analytics.sh                 # both databases
#   N=100 ONLY=sqlite bench/analytics.sh
#   KEEP=1 bench/analytics.sh          # keep the databases (PostgreSQL minispod_bench_analytics,
#                                      # SQLite /tmp/minispod_bench_analytics.db) for EXPLAIN
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minispod-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DB=minispod_bench_analytics
N="${N:-50}"
ONLY="${ONLY:-}"
KEEP="${KEEP:-}"
GW_PORT=18090
GW="http://127.0.0.1:$GW_PORT"
work="$(mktemp -d)"
gw_pid=""
cleanup() { [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q --release --bin minispod

start_gateway() {
  DATABASE_URL="$1" MINISPOD_LISTEN="127.0.0.1:$GW_PORT" MINISPOD_SEED_DEMO=false \
    MINISPOD_ADMIN_EMAIL=bench@minispod.local MINISPOD_ADMIN_PASSWORD=bench-password-1 \
    MINISPOD_RATE_LIMIT_EMAIL_PER_MIN=10000000 MINISPOD_RATE_LIMIT_IP_PER_MIN=10000000 RUST_LOG=warn \
    "$CARGO_TARGET_DIR/release/minispod" serve >"$work/gw-$2.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 100); do curl -sf "$GW/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "the gateway did not start:" >&2; cat "$work/gw-$2.log" >&2; exit 1
}
stop_gateway() { kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; gw_pid=""; }

# The ledger kinds by n % 20: 12 renewals, 2 first periods, 1 upgrade, 1 refund, 3 top-ups, 1 reversal.
KIND="CASE WHEN n % 20 < 12 THEN 'RENEWAL' WHEN n % 20 < 14 THEN 'SUBSCRIPTION' WHEN n % 20 = 14 THEN 'UPGRADE'
  WHEN n % 20 = 15 THEN 'REFUND' WHEN n % 20 < 19 THEN 'TOP_UP' ELSE 'REVERSAL' END"
# One subscription per user (ids in the same order), on one of the four plans.
SUBS="INSERT INTO subscriptions (user_id, service_id, plan_id, status, monthly_price, period_start, period_end,
    next_billing_at, auto_renew, failed_charges, created_at, updated_at)
  SELECT u.id, p.service_id, p.id, 'ACTIVE', p.monthly_price, u.created_at, u.created_at, u.created_at, TRUE, 0,
    u.created_at, u.created_at
  FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) AS k FROM users WHERE role = 'USER') u
  JOIN (SELECT id, service_id, monthly_price, row_number() OVER (ORDER BY id) - 1 AS k FROM service_plans) p
    ON p.k = u.k % 4
  ORDER BY u.id;"
LEDGER_COLS="user_id, type, status, amount, balance_before, balance_after, description, subscription_id, created_at,
  updated_at, completed_at"
LEDGER_SELECT="SELECT base.u0 + n % 10000, kind, CASE WHEN n % 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
    15000 * (1 + n % 6), 0, 0, 'bench', CASE WHEN kind IN ('TOP_UP', 'REVERSAL') THEN NULL ELSE sb.s0 + n % 10000 END,
    at, at, CASE WHEN n % 97 = 0 THEN NULL ELSE at END"

load_postgres() {
  psql -v ON_ERROR_STOP=1 -q "$PG/$DB" <<SQL
INSERT INTO users (name, email, password_hash, role, is_active, token_version, balance, total_top_up, total_spent,
                   created_at, updated_at)
SELECT 'Bench user ' || n, 'bench-' || n || '@bench.local', 'x', 'USER', TRUE, 0, 50000, 0, 0,
       now() - n * interval '52 minutes', now() FROM generate_series(1, 10000) n;
$SUBS
INSERT INTO transactions ($LEDGER_COLS)
$LEDGER_SELECT
FROM (SELECT n, now() - n * interval '31536 milliseconds' AS at, $KIND AS kind FROM generate_series(1, 1000000) n) g,
     (SELECT min(id) AS u0 FROM users WHERE role = 'USER') base, (SELECT min(id) AS s0 FROM subscriptions) sb;
VACUUM ANALYZE users;
VACUUM ANALYZE subscriptions;
VACUUM ANALYZE transactions;
VACUUM ANALYZE ledger_hourly;
SQL
}

# Timestamps as the gateway writes them on SQLite: RFC 3339 text in UTC.
load_sqlite() {
  local ts="strftime('%Y-%m-%dT%H:%M:%S+00:00', CAST(strftime('%s', 'now') AS INTEGER)"
  sqlite3 -bail "$1" <<SQL
.timeout 60000
BEGIN;
INSERT INTO users (name, email, password_hash, role, is_active, token_version, balance, total_top_up, total_spent,
                   created_at, updated_at)
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 10000)
SELECT 'Bench user ' || n, 'bench-' || n || '@bench.local', 'x', 'USER', 1, 0, 50000, 0, 0,
       $ts - n * 52 * 60, 'unixepoch'), $ts, 'unixepoch') FROM g;
$SUBS
INSERT INTO transactions ($LEDGER_COLS)
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000000)
$LEDGER_SELECT
FROM (SELECT n, $ts - n * 31536 / 1000, 'unixepoch') AS at, $KIND AS kind FROM g) g,
     (SELECT min(id) AS u0 FROM users WHERE role = 'USER') base, (SELECT min(id) AS s0 FROM subscriptions) sb;
COMMIT;
ANALYZE;
SQL
}

results=()
if [ "$ONLY" != sqlite ]; then
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  start_gateway "$PG/$DB?sslmode=disable" pg
  token=$(python3 bench/analytics.py setup "$GW")
  t0=$(date +%s); load_postgres; echo "PostgreSQL: loaded in $(( $(date +%s) - t0 )) s" >&2
  results+=("postgres $(python3 bench/analytics.py measure "$GW" "$token" "$N")")
  stop_gateway
  [ -n "$KEEP" ] || psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
fi
if [ "$ONLY" != postgres ]; then
  start_gateway "sqlite://$work/bench.db?mode=rwc" sqlite
  token=$(python3 bench/analytics.py setup "$GW")
  t0=$(date +%s); load_sqlite "$work/bench.db"; echo "SQLite: loaded in $(( $(date +%s) - t0 )) s" >&2
  results+=("sqlite $(python3 bench/analytics.py measure "$GW" "$token" "$N")")
  stop_gateway
  [ -z "$KEEP" ] || cp "$work/bench.db" "/tmp/$DB.db"
fi
for r in "${results[@]}"; do
  python3 - "$r" <<'PY'
import json, sys
db, rest = sys.argv[1].split(" ", 1)
for label, m in json.loads(rest).items():
    print(f"{db:<9} {label:<20} p50 {m['p50_ms']:>7.1f} ms  p95 {m['p95_ms']:>7.1f} ms  (n={m['n']}, warm)")
PY
done
