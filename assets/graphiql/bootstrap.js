// MinisPod Gateway: starts GraphiQL on the page served by src/graphiql.rs. A file of its own (not
// an inline script) so the page's Content-Security-Policy can say `script-src 'self'`.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var endpoint = root.getAttribute("data-endpoint") || "/graphql";

  function absolute(path, websocket) {
    var url = new URL(path, window.location.href);
    if (websocket) {
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    }
    return url.toString();
  }

  // The headers tab goes with every HTTP request and, for subscriptions, into the WebSocket
  // `connection_init` payload, where the gateway reads it: graphiql's fetcher (its toolkit 0.11)
  // merges the tab into `wsConnectionParams` and opens one socket per subscription. Checked in
  // tests/browser/graphiql.mjs, so a version bump that drops this fails there.
  var fetcher = GraphiQL.createFetcher({
    url: absolute(endpoint, false),
    subscriptionUrl: absolute(endpoint, true),
    wsConnectionParams: {},
    fetch: function (url, init) {
      return window.fetch(url, Object.assign({}, init, { credentials: "same-origin" }));
    },
  });

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
    })
  );
})();
