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
psql "$PG/$DB" -q >/dev/null <<'SQL'
INSERT INTO service_categories (name, slug, description, sort_order, created_at, updated_at)
SELECT 'Category ' || c, 'category-' || c, 'Generated category ' || c, c, now(), now() FROM generate_series(1, 10) c;
INSERT INTO services (category_id, name, slug, description, long_description, icon, version, docker_image, default_port,
                      env_template, tags, documentation, is_active, is_public, is_featured, sort_order, created_at, updated_at)
SELECT c.id, 'Service ' || c.sort_order || '-' || s, 'service-' || c.sort_order || '-' || s, 'A generated service',
       'Longer text about the generated service', 'https://example.com/icon.png', '1.0', 'nginx:1.27', 8080,
       '{"A":"1"}'::jsonb, '["generated","bench"]'::jsonb, 'https://example.com/docs', true, true, s = 1, s, now(), now()
FROM service_categories c, generate_series(1, 10) s;
INSERT INTO service_plans (service_id, name, plan_type, description, monthly_price, cpu_milli, memory_mb, storage_gb,
                           bandwidth_gb, total_quota, used_quota, features, max_instances_per_user, is_active, is_popular,
                           sort_order, created_at, updated_at)
SELECT s.id, t.name, t.name, 'Plan ' || t.name, t.price, 250 * t.n, 256 * t.n, 5 * t.n, 50 * t.n, 100, t.n,
       '["Backups","Monitoring","Support"]'::jsonb, 1, true, t.n = 2, t.n, now(), now()
FROM services s, (VALUES (1, 'FREE', 0), (2, 'BASIC', 25000), (3, 'PRO', 75000), (4, 'PREMIUM', 150000), (5, 'ENTERPRISE', 500000))
     AS t(n, name, price);
SQL

if [ ! -x bench/.postgraphile/node_modules/.bin/postgraphile ]; then
  npm install --silent --no-audit --no-fund --prefix bench/.postgraphile postgraphile@4 >/dev/null
fi
bench/.postgraphile/node_modules/.bin/postgraphile -c "$PG/$DB" -s public -n 127.0.0.1 -p "$PGL_PORT" \
  --disable-graphiql --disable-query-log >"$work/pgl.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf -XPOST -H 'content-type: application/json' -d '{"query":"{__typename}"}' \
  "http://127.0.0.1:$PGL_PORT/graphql" >/dev/null && break; sleep 0.2; done

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
