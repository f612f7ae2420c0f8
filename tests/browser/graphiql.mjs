// Drives the gateway's GraphiQL page in Debian's headless Chromium with every request that leaves
// the loopback address refused, as on an air-gapped machine.
//
//   node tests/browser/graphiql.mjs http://127.0.0.1:8080
//
// Environment:
//   MINISPOD_TOKEN       access token typed into the headers tab (required)
//   MINISPOD_EMAIL       the token's email: the `me` query must show it (required)
//   MINISPOD_EXPECT      text a walletUpdates event must show once the caller triggers it
//                        (after this script prints "SUBSCRIBED"); without it, no subscription
//   MINISPOD_SCREENSHOT  where to write a PNG of the page at the end (optional)
//   CHROMIUM             the browser (default /usr/bin/chromium); never downloaded
//
// Prints "SUBSCRIBED" once the subscription is sent, "OK" at the end; exits non-zero with the
// reason on stderr on any failure, console error or CSP violation.
import { chromium } from "playwright-core";

const base = process.argv[2];
const token = process.env.MINISPOD_TOKEN;
const email = process.env.MINISPOD_EMAIL;
const expect = process.env.MINISPOD_EXPECT;
const screenshot = process.env.MINISPOD_SCREENSHOT;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !token || !email) {
  console.error("usage: MINISPOD_TOKEN=… MINISPOD_EMAIL=… node graphiql.mjs <gateway url>");
  process.exit(2);
}
const TIMEOUT = 30_000;

const problems = [];
const short = (s) => (s.length > 300 ? `${s.slice(0, 300)}…` : s);
const blocked = [];
const wsSent = [];

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 800 }, serviceWorkers: "block" });
  // Only the gateway on the loopback address may be reached.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || url.hostname === "127.0.0.1") {
      return route.continue();
    }
    blocked.push(url.href);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${short(m.text())}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("websocket", (ws) => ws.on("framesent", (f) => wsSent.push(String(f.payload))));
  // CSP violations also reach the console, but this names the directive.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
    );
  });

  const response = await page.goto(`${base}/graphiql`);
  if (!response || response.status() !== 200) throw new Error(`GET /graphiql: ${response?.status()}`);
  await page.waitForSelector(".graphiql-container");
  await page.waitForSelector(".graphiql-query-editor .CodeMirror");

  // The headers tab: the Authorization header for HTTP and, via bootstrap.js, for connection_init.
  await page.click(".graphiql-editor-tools button[data-name=headers]");
  await setEditor(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror",
    JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));

  // A query over HTTP: the signed-in user's email appears in the response pane.
  await setQuery(page, "Me", "query Me {\n  me {\n    email\n    wallet {\n      balance\n    }\n  }\n}\n");
  await page.click(".graphiql-execute-button");
  await waitForResponse(page, (text) => text.includes(email), `the me query to show ${email}`);

  if (expect) {
    // A subscription over the WebSocket, authenticated by the headers tab.
    await setQuery(page, "Wallet",
      "subscription Wallet {\n  walletUpdates {\n    type\n    amount\n    balanceAfter\n  }\n}\n");
    await page.click(".graphiql-execute-button");
    await waitFor(() => wsSent.some((f) => f.includes('"subscribe"')), "the subscribe message");
    const init = wsSent.map((f) => JSON.parse(f)).find((m) => m.type === "connection_init");
    if (init?.payload?.Authorization !== `Bearer ${token}`) {
      throw new Error(`connection_init lacks the headers tab: ${JSON.stringify(init)}`);
    }
    console.log("SUBSCRIBED");
    await waitForResponse(page, (text) => text.includes(expect), `the walletUpdates event showing ${expect}`);
  }

  if (screenshot) await page.screenshot({ path: screenshot });
  if (blocked.length) problems.push(`requests left the loopback address: ${blocked.join(", ")}`);
  if (problems.length) throw new Error(problems.join("\n"));
  console.log("OK");
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function setEditor(page, selector, value) {
  await page.waitForSelector(selector);
  await page.evaluate(([s, v]) => document.querySelector(s).CodeMirror.setValue(v), [selector, value]);
}

// GraphiQL parses the query editor after a short debounce; the active tab takes the operation's
// name once it has, and only then does the run button send the new document.
async function setQuery(page, name, text) {
  await setEditor(page, ".graphiql-query-editor .CodeMirror", text);
  await page.waitForSelector(`.graphiql-tab-active .graphiql-tab-button[title="${name}"]`);
}

async function responseText(page) {
  return page.evaluate(() => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "");
}

async function waitForResponse(page, ok, what) {
  const deadline = Date.now() + TIMEOUT;
  let text = "";
  while (Date.now() < deadline) {
    text = await responseText(page);
    if (ok(text)) return text;
    await page.waitForTimeout(50);
  }
  throw new Error(`timed out waiting for ${what}; the response pane shows: ${text}`);
}

async function waitFor(condition, what) {
  const deadline = Date.now() + TIMEOUT;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
