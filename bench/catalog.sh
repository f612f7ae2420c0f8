#!/usr/bin/env bash
# Catalog benchmark (issue 3): on PostgreSQL with a generated catalog of 10 categories x 10
# services x 5 plans, 64 connections for 10 s each:
#   (a) { __typename }   (b) the full nested catalog query   (c) the same data from PostGraphile v4
# Prints req/s, p50 and p99 for each and the ratios b/a and b/c. Bodies are checked: a 200 answer
# with "errors" counts as an error.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minispod-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DB=minispod_bench
CONNS="${CONNS:-64}"
SECS="${SECS:-10}"
GW_PORT=18080
PGL_PORT=15000
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
cargo build -q --release --bin minispod
cargo bench -q --bench load --no-run 2>/dev/null
LOAD="$(ls -t "$CARGO_TARGET_DIR"/release/deps/load-* | grep -v '\.d$' | head -n1)"

DATABASE_URL="$PG/$DB" MINISPOD_LISTEN="127.0.0.1:$GW_PORT" MINISPOD_SEED_DEMO=false \
  MINISPOD_ADMIN_PASSWORD=bench-admin-password RUST_LOG=warn \
  "$CARGO_TARGET_DIR/release/minispod" serve >"$work/gw.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null && break; sleep 0.2; done

# The generated catalog (after the gateway has migrated the schema).
psql "$PG/$DB" -q -f bench/catalog.sql >/dev/null

. bench/postgraphile.sh
start_postgraphile "$PG/$DB" "$PGL_PORT" "$work/pgl.log"

cat >"$work/a.json" <<'JSON'
{"query":"{ __typename }"}
JSON
cat >"$work/b.json" <<'JSON'
{"query":"{ categories { name slug services { name slug description tags startingPrice plans { id name planType monthlyPrice cpuMilli memoryMb storageGb totalQuota usedQuota availableQuota features } } } }"}
JSON
cat >"$work/c.json" <<'JSON'
{"query":"{ allServiceCategories(orderBy: [SORT_ORDER_ASC, NAME_ASC]) { nodes { name slug servicesByCategoryId(condition: {isActive: true, isPublic: true}, orderBy: [IS_FEATURED_DESC, SORT_ORDER_ASC, NAME_ASC]) { nodes { name slug description tags servicePlansByServiceId(condition: {isActive: true}, orderBy: [MONTHLY_PRICE_ASC]) { nodes { id name planType monthlyPrice cpuMilli memoryMb storageGb totalQuota usedQuota features } } } } } } }"}
JSON

# The responses must carry all 500 plans.
for pair in "b:$GW_PORT/graphql" "c:$PGL_PORT/graphql"; do
  f="${pair%%:*}"; url="http://127.0.0.1:${pair#*:}"
  n=$(curl -s -XPOST -H 'content-type: application/json' --data-binary "@$work/$f.json" "$url" | grep -o '"planType"' | wc -l)
  [ "$n" = 500 ] || { echo "query $f returned $n plans, expected 500" >&2; exit 1; }
done

run() { "$LOAD" --label "$1" --url "$2" --body "$3" --connections "$CONNS" --seconds "$SECS" --expect "$4"; }
a=$(run "a_typename" "http://127.0.0.1:$GW_PORT/graphql" "$work/a.json" QueryRoot)
b=$(run "b_catalog_gateway" "http://127.0.0.1:$GW_PORT/graphql" "$work/b.json" planType)
c=$(run "c_catalog_postgraphile" "http://127.0.0.1:$PGL_PORT/graphql" "$work/c.json" planType)
printf '%s\n%s\n%s\n' "$a" "$b" "$c"
python3 - "$a" "$b" "$c" <<'PY'
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
for r in (a, b, c):
    print(f"{r['label']:<24} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms  errors {r['errors']}")
print(f"b/a = {b['rps'] / a['rps']:.2f} (target >= 0.5)   b/c = {b['rps'] / c['rps']:.2f} (target >= 2)")
PY
