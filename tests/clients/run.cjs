// Real clients against a running gateway (started by tests/api/clients.rs):
// - Apollo Client's persisted-query link (sha256 from node's crypto) over HttpLink: the first
//   request carries the hash alone, gets PERSISTED_QUERY_NOT_FOUND and the link retries with
//   the document; then the hash alone runs it (POST, and GET with useGETForHashedQueries).
// - Apollo's BatchHttpLink: three queries in one POST, one answer each.
// - graphql-ws: a walletUpdates subscription receives the event the Rust side causes after
//   this script prints SUBSCRIBED.
// Admin-only fields come back as null with FORBIDDEN, and Apollo must log no "Missing field".
// Exits non-zero, with the reason on stderr, when anything is off.
"use strict";
const crypto = require("node:crypto");
const { ApolloClient, InMemoryCache, HttpLink, gql } = require("@apollo/client/core");
const { createPersistedQueryLink } = require("@apollo/client/link/persisted-queries");
const { BatchHttpLink } = require("@apollo/client/link/batch-http");
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const { GATEWAY_URL, GATEWAY_WS_URL, TOKEN } = process.env;
if (!GATEWAY_URL || !GATEWAY_WS_URL || !TOKEN) {
  console.error("GATEWAY_URL, GATEWAY_WS_URL and TOKEN must be set");
  process.exit(2);
}

// Everything Apollo logs, to find "Missing field" warnings.
const logged = [];
for (const level of ["log", "warn", "error", "debug", "info"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    logged.push(args.map(String).join(" "));
    if (level !== "log") original(...args);
  };
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Every HTTP exchange: method, request body (or URL for GET) and the parsed answer.
const exchanges = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  const text = await response.clone().text();
  let answer;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = text;
  }
  exchanges.push({ method: init.method || "GET", url: String(url), body: init.body ? JSON.parse(init.body) : null, status: response.status, answer });
  return response;
}

const headers = { authorization: `Bearer ${TOKEN}` };
const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");
const newClient = (link) => new ApolloClient({ link, cache: new InMemoryCache() });

const CATALOG = gql`
  query Catalog {
    me { id email }
    services(first: 2) { nodes { id slug name dockerImage plans { id name monthlyPrice } } }
  }
`;

async function persistedQueries() {
  const client = newClient(
    createPersistedQueryLink({ sha256 }).concat(new HttpLink({ uri: GATEWAY_URL, fetch: recordingFetch, headers })),
  );
  const first = await client.query({ query: CATALOG, errorPolicy: "all", fetchPolicy: "network-only" });
  check(exchanges.length === 2, `APQ registration takes two requests, saw ${exchanges.length}`);
  const [miss, retry] = exchanges;
  check(miss.body.query === undefined && miss.body.extensions.persistedQuery.sha256Hash, "first request sends the hash alone");
  check(miss.answer.errors[0].extensions.code === "PERSISTED_QUERY_NOT_FOUND", `first answer: ${JSON.stringify(miss.answer)}`);
  check(miss.answer.errors[0].message === "PersistedQueryNotFound", "Apollo's message");
  check(typeof retry.body.query === "string" && retry.body.extensions.persistedQuery, "the link retried with the document");
  check(first.data.me.email, `me answered: ${JSON.stringify(first.data)}`);
  const service = first.data.services.nodes[0];
  check(service && service.name && service.dockerImage === null, `admin-only field is null beside the rest: ${JSON.stringify(service)}`);
  check(
    (first.errors || []).some((e) => e.extensions.code === "FORBIDDEN" && e.path.join(".") === "services.nodes.0.dockerImage"),
    `FORBIDDEN with its path: ${JSON.stringify(first.errors)}`,
  );

  // Registered: the hash alone now runs it.
  exchanges.length = 0;
  const again = await client.query({ query: CATALOG, errorPolicy: "all", fetchPolicy: "network-only" });
  check(exchanges.length === 1 && exchanges[0].body.query === undefined, "one hash-only request");
  check(again.data.services.nodes.length === first.data.services.nodes.length, "same answer");

  exchanges.length = 0;
  const viaGet = newClient(
    createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
      new HttpLink({ uri: GATEWAY_URL, fetch: recordingFetch, headers }),
    ),
  );
  const got = await viaGet.query({ query: CATALOG, errorPolicy: "all", fetchPolicy: "network-only" });
  check(exchanges.length === 1 && exchanges[0].method === "GET", `hash over GET: ${JSON.stringify(exchanges)}`);
  check(got.data.me.email === first.data.me.email, "GET answered");
}

async function batching() {
  exchanges.length = 0;
  const client = newClient(new BatchHttpLink({ uri: GATEWAY_URL, fetch: recordingFetch, headers, batchMax: 5, batchInterval: 20 }));
  const [me, categories, services] = await Promise.all([
    client.query({ query: gql`query Me { me { id email } }` }),
    client.query({ query: gql`query Categories { categories { id slug name } }` }),
    client.query({ query: gql`query Services { services(first: 3) { nodes { id slug } } }` }),
  ]);
  check(exchanges.length === 1, `one HTTP request for the batch, saw ${exchanges.length}`);
  check(Array.isArray(exchanges[0].body) && exchanges[0].body.length === 3, "a JSON array of three operations");
  check(Array.isArray(exchanges[0].answer) && exchanges[0].answer.length === 3, "three answers");
  check(me.data.me.email && categories.data.categories.length > 0 && services.data.services.nodes.length > 0, "each answered");
}

async function subscription() {
  const ws = createClient({
    url: GATEWAY_WS_URL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${TOKEN}` },
    retryAttempts: 0,
  });
  const event = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no walletUpdates event within 30 s")), 30_000);
    ws.subscribe(
      { query: "subscription { walletUpdates { id type amount balanceAfter } }" },
      {
        next: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        error: (err) => reject(new Error(`subscription error: ${JSON.stringify(err)}`)),
        complete: () => {},
      },
    );
  });
  // Connected and subscribed: the Rust side waits for the server to register it, then
  // adjusts this user's credit.
  await new Promise((resolve) => ws.on("connected", resolve));
  process.stdout.write("SUBSCRIBED\n");
  const value = await event;
  check(value.data.walletUpdates.amount === 5000, `the event: ${JSON.stringify(value)}`);
  await ws.dispose();
}

(async () => {
  await persistedQueries();
  await batching();
  await subscription();
  const missing = logged.filter((line) => line.includes("Missing field"));
  check(missing.length === 0, `Apollo warned: ${missing.join("\n")}`);
  process.stdout.write("OK\n");
})().catch((err) => {
  process.stderr.write(`client test failed: ${err.stack || err}\n`);
  process.exit(1);
});
