#!/usr/bin/env bash
# Performance where the cache cannot help (issue 13), all in one run on PostgreSQL with the
# generated 10x10x5 catalog (bench/catalog.sql), 100 subscriptions of 20 users, CONNS connections
# for SECS seconds each:
#   a  { __typename }
#   b  the nested catalog, answer cache hit
#   c  the same data from PostGraphile v4
#   d  the nested catalog with `me { id }` added (signed in: the cache does not apply)
#   e  b while 4 users keep subscribe -> cancelSubscription going at RATE pairs/s (quota changes)
#   f  a user's page: me { subscriptions { plan { service } instances transactions } wallet }
#   g  an admin's page: allSubscriptions(first: 100) { nodes { user plan instances } }
# then SQL statements per request for d, f and g, and the gateway's RSS before, during and 60 s
# after MEM_SECS of the mixed load e. Bodies are checked: a 200 answer with "errors" is an error.
#   CONNS=64 SECS=10 RATE=20 MEM_SECS=60 AFTER_SECS=60 bench/performance.sh
#   MALLOC= bench/performance.sh                # glibc malloc defaults instead of the image's
#   FEATURES=otlp bench/performance.sh          # the gateway built with other cargo features
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minispod-target}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DB=minispod_bench
CONNS="${CONNS:-64}"
SECS="${SECS:-10}"
RATE="${RATE:-20}"
MEM_SECS="${MEM_SECS:-60}"
AFTER_SECS="${AFTER_SECS:-60}"
FEATURES="${FEATURES:-}"
# glibc malloc settings for the gateway, as the container image sets them; MALLOC= for defaults.
MALLOC="${MALLOC-glibc.malloc.mmap_threshold=1048576}"
# PostGraphile's client connects without TLS; so does the gateway here, unless asked to.
GW_SSLMODE="${GW_SSLMODE:-disable}"
GW_PORT=18080
PGL_PORT=15000
GW="http://127.0.0.1:$GW_PORT"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
cargo build -q --release --bin minispod ${FEATURES:+--features "$FEATURES"}
cargo bench -q --bench load --bench clients --no-run 2>/dev/null
bin() { ls -t "$CARGO_TARGET_DIR"/release/deps/"$1"-* | grep -v '\.d$' | head -n1; }
LOAD="$(bin load)"
CLIENTS="$(bin clients)"

GLIBC_TUNABLES="$MALLOC" DATABASE_URL="$PG/$DB?sslmode=$GW_SSLMODE" MINISPOD_LISTEN="127.0.0.1:$GW_PORT" MINISPOD_SEED_DEMO=false \
  MINISPOD_ADMIN_EMAIL=bench@minispod.local MINISPOD_ADMIN_PASSWORD=bench-password-1 \
  MINISPOD_RATE_LIMIT_EMAIL_PER_MIN=10000000 MINISPOD_RATE_LIMIT_IP_PER_MIN=10000000 RUST_LOG=warn \
  "$CARGO_TARGET_DIR/release/minispod" serve >"$work/gw.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
for _ in $(seq 1 50); do curl -sf "$GW/readyz" >/dev/null && break; sleep 0.2; done
psql "$PG/$DB" -q -f bench/catalog.sql >/dev/null

. bench/postgraphile.sh
start_postgraphile "$PG/$DB" "$PGL_PORT" "$work/pgl.log"

"$CLIENTS" setup "$GW" "$work"
USER_AUTH="Authorization: Bearer $(cat "$work/user.token")"
ADMIN_AUTH="Authorization: Bearer $(cat "$work/admin.token")"

CATALOG='categories { name slug services { name slug description tags startingPrice plans { id name planType monthlyPrice cpuMilli memoryMb storageGb totalQuota usedQuota availableQuota features } } }'
echo '{"query":"{ __typename }"}' >"$work/a.json"
echo "{\"query\":\"{ $CATALOG }\"}" >"$work/b.json"
cat >"$work/c.json" <<'JSON'
{"query":"{ allServiceCategories(orderBy: [SORT_ORDER_ASC, NAME_ASC]) { nodes { name slug servicesByCategoryId(condition: {isActive: true, isPublic: true}, orderBy: [IS_FEATURED_DESC, SORT_ORDER_ASC, NAME_ASC]) { nodes { name slug description tags servicePlansByServiceId(condition: {isActive: true}, orderBy: [MONTHLY_PRICE_ASC]) { nodes { id name planType monthlyPrice cpuMilli memoryMb storageGb totalQuota usedQuota features } } } } } } }"}
JSON
echo "{\"query\":\"{ me { id } $CATALOG }\"}" >"$work/d.json"
echo '{"query":"{ me { subscriptions { plan { service { name } } instances { status } transactions { amount } } wallet { balance } } }"}' >"$work/f.json"
echo '{"query":"{ allSubscriptions(first: 100) { nodes { user { email } plan { name } instances { status } } } }"}' >"$work/g.json"

# The catalog answers must carry all 500 plans, the admin page 100 subscriptions.
count() { curl -s -XPOST -H 'content-type: application/json' ${3:+-H "$3"} --data-binary "@$work/$1.json" "$2" | grep -o "$4" | wc -l; }
for check in "b|$GW/graphql||\"planType\"|500" "c|http://127.0.0.1:$PGL_PORT/graphql||\"planType\"|500" \
  "d|$GW/graphql|$USER_AUTH|\"planType\"|500" "f|$GW/graphql|$USER_AUTH|\"amount\"|5" \
  "g|$GW/graphql|$ADMIN_AUTH|\"email\"|100"; do
  IFS='|' read -r f url auth pattern want <<<"$check"
  n=$(count "$f" "$url" "$auth" "$pattern")
  [ "$n" = "$want" ] || { echo "query $f returned $n of $pattern, expected $want" >&2; exit 1; }
done

rss() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$GW_PID/status"; }
statements() { curl -s "$GW/metrics" | awk '/^minispod_db_statements_total / { print $2 }'; }
# SQL statements per request while the run was under way (JSON field "statements").
with_statements() {
  local before after out
  before=$(statements); out=$("$@"); after=$(statements)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); r['statements']=round(($after-$before)/max(r['requests'],1),2); print(json.dumps(r))" "$out"
}
run() {
  local label="$1" url="$2" body="$3" expect="$4" secs="$5"; shift 5
  "$LOAD" --label "$label" --url "$url" --body "$body" --connections "$CONNS" --seconds "$secs" --expect "$expect" "$@"
}
rss_start=$(rss)
a=$(run a_typename "$GW/graphql" "$work/a.json" QueryRoot "$SECS")
b=$(run b_catalog_cached "$GW/graphql" "$work/b.json" planType "$SECS")
c=$(run c_postgraphile "http://127.0.0.1:$PGL_PORT/graphql" "$work/c.json" planType "$SECS")
d=$(with_statements run d_catalog_uncached "$GW/graphql" "$work/d.json" planType "$SECS" --header "$USER_AUTH")
"$CLIENTS" churn "$GW" "$work" "$RATE" "$SECS" >"$work/churn.json" &
e=$(run e_catalog_with_churn "$GW/graphql" "$work/b.json" planType "$SECS")
wait $!
churn=$(cat "$work/churn.json")
f=$(with_statements run f_user_page "$GW/graphql" "$work/f.json" amount "$SECS" --header "$USER_AUTH")
g=$(with_statements run g_admin_page "$GW/graphql" "$work/g.json" email "$SECS" --header "$ADMIN_AUTH")
sd=$("$CLIENTS" statements "$GW" "$(cat "$work/user.token")" "$work/d.json" 20)
sf=$("$CLIENTS" statements "$GW" "$(cat "$work/user.token")" "$work/f.json" 20)
sg=$("$CLIENTS" statements "$GW" "$(cat "$work/admin.token")" "$work/g.json" 20)

# Memory: RSS before, the highest during MEM_SECS of the mixed load, and 60 s after it.
rss_before=$(rss)
"$CLIENTS" churn "$GW" "$work" "$RATE" "$MEM_SECS" >"$work/churn2.json" &
churn_pid=$!
run m_mixed_catalog "$GW/graphql" "$work/b.json" planType "$MEM_SECS" >"$work/m1.json" &
m1=$!
run m_mixed_uncached "$GW/graphql" "$work/d.json" planType "$MEM_SECS" --header "$USER_AUTH" >"$work/m2.json" &
m2=$!
rss_peak=0
while kill -0 "$m1" 2>/dev/null; do
  r=$(rss); [ "$r" -gt "$rss_peak" ] && rss_peak=$r
  sleep 1
done
wait "$m1" "$m2" "$churn_pid"
sleep "$AFTER_SECS"
rss_after=$(rss)

printf '%s\n' "$a" "$b" "$c" "$d" "$e" "$churn" "$f" "$g" "$sd" "$sf" "$sg" "$(cat "$work/m1.json")" "$(cat "$work/m2.json")"
python3 - "$a" "$b" "$c" "$d" "$e" "$churn" "$f" "$g" "$sd" "$sf" "$sg" "$rss_start" "$rss_before" "$rss_peak" "$rss_after" "$AFTER_SECS" <<'PY'
import json, sys
a, b, c, d, e, churn, f, g, sd, sf, sg = (json.loads(x) for x in sys.argv[1:12])
rss_start, rss_before, rss_peak, rss_after = sys.argv[12:16]
for r in (a, b, c, d, e, f, g):
    print(f"{r['label']:<22} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms  errors {r['errors']}")
print(f"churn during e: {churn['pairs_per_s']} pairs/s, {churn['failed']} failed")
print(f"d/c = {d['rps'] / c['rps']:.2f} (target >= 4)   e/b = {e['rps'] / b['rps']:.2f} (target >= 0.5)")
print(f"SQL statements per request, one at a time: d {sd['per_request']}  f {sf['per_request']}  g {sg['per_request']}")
print(f"SQL statements per request, {d['connections']} at once: d {d['statements']}  f {f['statements']}  g {g['statements']}")
print(f"RSS MiB: after setup {rss_start}, before the mixed load {rss_before}, peak during {rss_peak}, {sys.argv[16]} s after {rss_after}")
PY
