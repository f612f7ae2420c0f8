"""Helper of bench/analytics.sh: GraphQL calls (sign-in, catalog) and the latency loop.

  analytics.py setup GW            signs in the admin, creates 2 services x 2 plans; prints the token
  analytics.py measure GW TOKEN N  p50/p95 (ms) of revenue (90 days by day) and topSpenders (30 days)
"""
import datetime as dt
import http.client
import json
import sys
import time
import urllib.parse


def client(gw):
    u = urllib.parse.urlparse(gw)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def gql(conn, query, variables=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", "/graphql", json.dumps({"query": query, "variables": variables or {}}), headers)
    body = json.loads(conn.getresponse().read())
    if body.get("errors"):
        raise SystemExit(f"GraphQL errors: {body['errors']}")
    return body["data"]


def setup(gw):
    c = client(gw)
    login = gql(c, 'mutation { login(email: "bench@minispod.local", password: "bench-password-1") { accessToken } }')
    token = login["login"]["accessToken"]
    cat = gql(c, 'mutation { createCategory(input: { name: "Apps", slug: "apps" }) { id } }', token=token)
    for n in (1, 2):
        svc = gql(c, "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }", {"i": {
            "categoryId": cat["createCategory"]["id"], "name": f"app-{n}", "slug": f"app-{n}", "version": "1",
            "dockerImage": "nginx:1", "defaultPort": 80}}, token)
        for plan, price in (("BASIC", 30000), ("PRO", 90000)):
            gql(c, "mutation($s: ID!, $i: CreatePlanInput!) { createPlan(serviceId: $s, input: $i) { id } }", {
                "s": svc["createService"]["id"], "i": {"name": plan, "planType": plan, "monthlyPrice": price,
                "cpuMilli": 250, "memoryMb": 256, "storageGb": 1, "totalQuota": 100000}}, token)
    print(token)


REVENUE = ("query($from: DateTime!, $to: DateTime!) { analytics { revenue(from: $from, to: $to, bucket: DAY, "
           "timeZone: \"Asia/Jakarta\") { series { bucketStart subscriptionCharges upgrades renewals refunds topUps "
           "reversals } byService { serviceId name netRevenue } } } }")
SPENDERS = ("query($from: DateTime!, $to: DateTime!) { analytics { topSpenders(from: $from, to: $to, first: 10) "
            "{ userId email spent } } }")


def measure(gw, token, n):
    c = client(gw)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    iso = lambda t: t.isoformat()
    cases = [
        ("revenue_90d_by_day", REVENUE, {"from": iso(now - dt.timedelta(days=90)), "to": iso(now)},
         lambda d: len(d["analytics"]["revenue"]["series"]) >= 90
         and sum(p["renewals"] for p in d["analytics"]["revenue"]["series"]) > 0),
        ("top_spenders_30d", SPENDERS, {"from": iso(now - dt.timedelta(days=30)), "to": iso(now)},
         lambda d: len(d["analytics"]["topSpenders"]) == 10),
    ]
    out = {}
    for label, q, v, check in cases:
        for _ in range(5):  # warm: connection pool, statement cache, pages in memory
            d = gql(c, q, v, token)
        assert check(d), f"{label}: unexpected answer {str(d)[:300]}"
        times = []
        for _ in range(n):
            t = time.perf_counter()
            gql(c, q, v, token)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[label] = {"p50_ms": round(times[len(times) // 2], 1), "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
                      "n": n}
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))
