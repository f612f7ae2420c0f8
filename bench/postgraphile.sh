# Sourced by bench/catalog.sh and bench/performance.sh: starts PostGraphile v4 on a database
# (installed under bench/.postgraphile on first use), adds its pid to `pids`, waits until it
# answers. Usage: start_postgraphile DATABASE_URL PORT LOG
start_postgraphile() {
  if [ ! -x bench/.postgraphile/node_modules/.bin/postgraphile ]; then
    npm install --silent --no-audit --no-fund --prefix bench/.postgraphile postgraphile@4 >/dev/null
  fi
  bench/.postgraphile/node_modules/.bin/postgraphile -c "$1" -s public -n 127.0.0.1 -p "$2" \
    --disable-graphiql --disable-query-log >"$3" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf -XPOST -H 'content-type: application/json' -d '{"query":"{__typename}"}' \
    "http://127.0.0.1:$2/graphql" >/dev/null && break; sleep 0.2; done
}
