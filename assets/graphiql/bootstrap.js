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

  // The headers tab is sent with HTTP requests; subscriptions go over a WebSocket, where the
  // gateway reads the same headers from the `connection_init` payload. So the WebSocket
  // connection parameters are the headers typed in the tab (e.g. {"Authorization": "Bearer …"}):
  // one fetcher per distinct headers value.
  var byHeaders = {};
  function fetcher(params, opts) {
    var headers = (opts && opts.headers) || {};
    var key = JSON.stringify(headers);
    if (!byHeaders[key]) {
      byHeaders[key] = GraphiQL.createFetcher({
        url: absolute(endpoint, false),
        subscriptionUrl: absolute(endpoint, true),
        wsConnectionParams: Object.assign({}, headers),
        fetch: function (url, init) {
          return window.fetch(url, Object.assign({}, init, { credentials: "same-origin" }));
        },
      });
    }
    return byHeaders[key](params, opts);
  }

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
    })
  );
})();
