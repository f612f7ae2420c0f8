//! The GraphQL schema (merged roots, limits) and its HTTP and WebSocket handlers.
use std::{net::SocketAddr, sync::Arc};

use async_graphql::{
    Context, Data, Executor, MergedObject, MergedSubscription, Schema, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade, ws::Message},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use futures::{SinkExt, StreamExt, stream::BoxStream};

use crate::{
    auth::{self, Auth},
    catalog::cache::CatalogCache,
    cluster::fanout::{self, ConnectionFanout},
    state::AppState,
};

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    crate::users::graphql::UserQuery,
    crate::catalog::graphql::CatalogQuery,
    crate::billing::graphql::WalletQuery,
    crate::subscriptions::graphql::SubscriptionQuery,
    crate::instances::graphql::InstanceQuery,
    crate::cluster::graphql::ClusterQuery,
    crate::reports::graphql::ReportQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    crate::auth::graphql::AuthMutation,
    crate::users::graphql::UserMutation,
    crate::catalog::graphql::CatalogMutation,
    crate::billing::graphql::WalletMutation,
    crate::payments::graphql::PaymentMutation,
    crate::subscriptions::graphql::SubscriptionMutation,
    crate::jobs::graphql::JobMutation,
    crate::instances::graphql::InstanceMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    crate::billing::graphql::WalletSubscription,
    crate::cluster::graphql::ClusterSubscription,
    crate::instances::graphql::InstanceSubscription,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The client address as seen by the gateway (or X-Forwarded-For when configured to trust it).
#[derive(Clone, Debug)]
pub struct ClientIp(pub Option<String>);

/// Request-scoped accessors used by every resolver.
pub trait ContextExt {
    fn state(&self) -> &AppState;
    fn auth(&self) -> &Auth;
    fn client_ip(&self) -> Option<&str>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        // Inserted by `build_schema`; every schema this crate runs has it.
        self.data_unchecked::<AppState>()
    }
    fn auth(&self) -> &Auth {
        self.data_opt::<Auth>().unwrap_or(&Auth::Anonymous)
    }
    fn client_ip(&self) -> Option<&str> {
        self.data_opt::<ClientIp>().and_then(|c| c.0.as_deref())
    }
}

pub fn build_schema(state: Option<AppState>) -> AppSchema {
    let limits =
        state.as_ref().map(|s| s.config.graphql.clone()).unwrap_or_else(|| crate::config::Config::default().graphql);
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_depth * 2 + 8)
        .limit_directives(16)
        .extension(DocumentLimits { max_aliases: limits.max_aliases, max_depth: limits.max_depth });
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// Request-scoped dataloaders: batching within one request, no cache across requests.
fn with_loaders(req: async_graphql::Request, state: &AppState) -> async_graphql::Request {
    req.data(crate::catalog::loader::new(&state.db)).data(crate::subscriptions::loader::new(&state.db))
}

/// The SDL committed as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}

/// Limits on the document itself: bracket nesting before parsing (the parser recurses per
/// level), aliases after it (they multiply the work of one field without adding depth, and
/// complexity alone prices them too cheaply).
#[derive(Clone, Copy)]
struct DocumentLimits {
    max_aliases: usize,
    max_depth: usize,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node),
            Selection::InlineFragment(i) => count_aliases(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Bracket nesting of a query text, outside strings and comments. Checked before parsing: the
/// parser recurses once per level, so a megabyte of `{` must never reach it.
fn nesting(query: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '{' | '(' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' | ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn check_nesting(query: &str, max_depth: usize) -> ServerResult<()> {
    // Arguments and lists nest too; allow some room above the selection depth limit.
    if nesting(query) > max_depth * 2 + 8 {
        return Err(ServerError::new("query is nested too deep", None));
    }
    Ok(())
}

/// Refuses a parsed document with more aliases than allowed.
fn check_aliases(doc: &ExecutableDocument, max: usize) -> ServerResult<()> {
    let aliases: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .chain(doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)))
        .sum();
    if aliases > max {
        return Err(ServerError::new(format!("query has {aliases} aliases; at most {max} are allowed"), None));
    }
    Ok(())
}

// WebSocket operations are parsed by the schema and checked in this hook. HTTP requests are
// parsed (and checked) by `execute`; the schema reuses that document without calling the hook.
#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check_nesting(query, self.max_depth)?;
        let doc = next.run(ctx, query, variables).await?;
        check_aliases(&doc, self.max_aliases)?;
        Ok(doc)
    }
}

fn client_ip(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ClientIp {
    if state.config.trust_forwarded_for
        && let Some(first) =
            headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next())
    {
        return ClientIp(Some(first.trim().to_string()));
    }
    ClientIp(Some(peer.ip().to_string()))
}

/// Every error leaves with a code: engine errors (parse, validation, limits) lack one and are
/// the client's fault.
fn finish(mut resp: async_graphql::Response) -> GraphQLResponse {
    for err in &mut resp.errors {
        let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if !has_code {
            err.extensions.get_or_insert_with(Default::default).set("code", "BAD_USER_INPUT");
        }
    }
    resp.into()
}

async fn execute(
    state: &AppState,
    schema: &AppSchema,
    headers: &HeaderMap,
    peer: SocketAddr,
    mut req: async_graphql::Request,
    queries_only: bool,
) -> Response {
    let refuse = |e: ServerError| finish(async_graphql::Response::from_errors(vec![e])).into_response();
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth = match auth::authenticate(state, auth_header).await {
        Ok(a) => a,
        Err(e) => {
            let err: async_graphql::Error = e.into();
            return refuse(err.into_server_error(Default::default()));
        }
    };
    // Cached catalog answers are found by the request's text, before any parsing: only requests
    // that passed every check below and read nothing but the public catalog were stored.
    let cache = &state.catalog_cache;
    let (key, version) = (CatalogCache::key(auth.viewer().is_ok_and(|v| v.is_admin()), &req), cache.version());
    if let Some(body) = cache.get(&key, version) {
        return json_body(body);
    }
    if let Err(e) = check_nesting(&req.query, state.config.graphql.max_depth) {
        return refuse(e);
    }
    let operation = req.operation_name.clone();
    let doc = match req.parsed_query() {
        Ok(doc) => doc,
        Err(e) => return refuse(e),
    };
    if let Err(e) = check_aliases(doc, state.config.graphql.max_aliases) {
        return refuse(e);
    }
    if queries_only && doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query) {
        return refuse(ServerError::new("GET requests may only run queries; use POST", None));
    }
    let cacheable = CatalogCache::cacheable(doc, operation.as_deref());
    let req = with_loaders(req.data(auth).data(client_ip(state, headers, peer)), state);
    // Unconstrained: tokio's cooperative budget would otherwise force a yield after ~128 loader
    // wake-ups, splitting one nesting level of a large list into several dataloader batches.
    // The work per request is bounded by the depth/complexity limits.
    let resp = tokio::task::unconstrained(schema.execute(req)).await;
    match cacheable {
        true if resp.is_ok() => match serde_json::to_vec(&resp) {
            Ok(body) => {
                let body = bytes::Bytes::from(body);
                cache.put(key, version, body.clone());
                json_body(body)
            }
            Err(_) => finish(resp).into_response(),
        },
        _ => finish(resp).into_response(),
    }
}

fn json_body(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn graphql_post(
    State((state, schema)): State<(AppState, AppSchema)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> Response {
    execute(&state, &schema, &headers, peer, req.into_inner(), false).await
}

const WS_BUFFER_BYTES: usize = 4 * 1024;

/// GET serves queries from the URL, or upgrades to a GraphQL WebSocket.
pub async fn graphql_get(
    State((state, schema)): State<(AppState, AppSchema)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let wants_ws =
        headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_ws {
        let (mut parts, _) = req.into_parts();
        let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
            Ok(p) => p,
            Err(status) => return (status, "unsupported WebSocket subprotocol").into_response(),
        };
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        let ip = client_ip(&state, &headers, peer);
        // Per-connection buffers dominate the memory of idle subscribers: the 128 KiB defaults
        // cost ~130 KiB each, while client messages are tiny and samples go out one by one.
        return ws
            .read_buffer_size(WS_BUFFER_BYTES)
            .write_buffer_size(WS_BUFFER_BYTES)
            .max_message_size(state.config.graphql.max_body_bytes)
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| {
                // Metric samples are serialised once for all subscribers (`cluster::fanout`); the
                // sink puts each connection's copy in place.
                let fanout = ConnectionFanout::default();
                let (sink, stream) = socket.split();
                let sink = sink.with({
                    let fanout = fanout.clone();
                    move |msg| futures::future::ready(Ok::<_, axum::Error>(resolve_shared(&fanout, msg)))
                });
                let executor = WsExecutor { schema, state: state.clone(), fanout: fanout.clone() };
                GraphQLWebSocket::new_with_pair(sink, stream, executor, protocol)
                    .on_connection_init(move |payload| ws_init(state, ip, payload))
                    .serve()
            })
            .into_response();
    }
    match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(req, &()).await {
        Ok(r) => execute(&state, &schema, &headers, peer, r.into_inner(), true).await,
        Err(e) => e.into_response(),
    }
}

fn resolve_shared(fanout: &ConnectionFanout, msg: Message) -> Message {
    match msg {
        Message::Text(text) => match fanout.resolve(text.as_str()) {
            Some(shared) => Message::Text(shared.into()),
            None => Message::Text(text),
        },
        other => other,
    }
}

/// The schema, with admin metric subscriptions shared across subscribers (`cluster::fanout`).
#[derive(Clone)]
struct WsExecutor {
    schema: AppSchema,
    state: AppState,
    fanout: ConnectionFanout,
}

impl Executor for WsExecutor {
    fn execute(&self, request: async_graphql::Request) -> impl Future<Output = async_graphql::Response> + Send {
        Executor::execute(&self.schema, request)
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let is_admin = session_data.as_deref().and_then(fanout::session_get::<Auth>).is_some_and(|a| a.admin().is_ok());
        // Sharing parses the document first: never one the parser must not see.
        let shareable = is_admin && check_nesting(&request.query, self.state.config.graphql.max_depth).is_ok();
        let schema = self.schema.clone();
        self.fanout.execute_stream(&self.state.cluster.shared, request, shareable, move |r| {
            Executor::execute_stream(&schema, r, session_data)
        })
    }
}

/// graphql-transport-ws `connection_init`: `{ "Authorization": "Bearer <token>" }`. A bad token
/// refuses the connection; no token gives an anonymous connection.
async fn ws_init(state: AppState, ip: ClientIp, payload: serde_json::Value) -> async_graphql::Result<Data> {
    let header = ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
        .map(str::to_string);
    let auth = auth::authenticate(&state, header.as_deref()).await?;
    if matches!(auth, Auth::Invalid) {
        return Err(async_graphql::Error::new("invalid or expired access token"));
    }
    let mut data = Data::default();
    data.insert(auth);
    data.insert(ip);
    data.insert(crate::catalog::loader::new(&state.db));
    data.insert(crate::subscriptions::loader::new(&state.db));
    Ok(data)
}

/// GraphiQL sends its headers tab with HTTP requests but not in the WebSocket `connection_init`
/// payload, so subscriptions could not authenticate. This wraps its fetcher factory: one
/// fetcher per distinct headers value, whose WebSocket client sends those headers at init.
const GRAPHIQL_WS_HEADERS: &str = r#"
      const minispodCreateFetcher = GraphiQL.createFetcher;
      GraphiQL.createFetcher = (options) => {
        const byHeaders = {};
        return (params, opts) => {
          const headers = (opts && opts.headers) || {};
          const key = JSON.stringify(headers);
          if (!byHeaders[key]) {
            byHeaders[key] = minispodCreateFetcher({ ...options, wsConnectionParams: { ...(options.wsConnectionParams || {}), ...headers } });
          }
          return byHeaders[key](params, opts);
        };
      };
      ReactDOM.createRoot("#;

pub async fn graphiql() -> impl IntoResponse {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .subscription_endpoint("/graphql")
        .title("MinisPod Gateway")
        .finish();
    Html(page.replacen("ReactDOM.createRoot(", GRAPHIQL_WS_HEADERS.trim_start(), 1))
}

pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}

#[cfg(test)]
mod tests {
    use super::nesting;

    #[test]
    fn nesting_ignores_strings_and_comments() {
        assert_eq!(nesting("{ a { b(x: [1]) } }"), 4);
        assert_eq!(nesting(r#"{ a(s: "{{{{\"{{") }"#), 2);
        assert_eq!(nesting("{ a # {{{{{\n }"), 1);
        assert_eq!(nesting(&"{".repeat(100_000)), 100_000);
    }
}
