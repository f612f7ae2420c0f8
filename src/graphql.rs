//! The GraphQL schema (merged roots, limits) and its HTTP and WebSocket handlers.
use std::{net::SocketAddr, sync::Arc};

use async_graphql::{
    Context, Data, MergedObject, MergedSubscription, Schema, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource},
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use crate::{
    auth::{self, Auth},
    state::AppState,
};

#[derive(MergedObject, Default)]
pub struct QueryRoot(crate::users::graphql::UserQuery, crate::cluster::graphql::ClusterQuery);

#[derive(MergedObject, Default)]
pub struct MutationRoot(crate::auth::graphql::AuthMutation, crate::users::graphql::UserMutation);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(crate::cluster::graphql::ClusterSubscription);

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
        .extension(AliasLimit(limits.max_aliases));
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL committed as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}

/// Refuses documents with more aliases than allowed: aliases multiply the work of one field
/// without raising depth, and complexity alone prices them too cheaply.
struct AliasLimit(usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExt(self.0))
    }
}

struct AliasLimitExt(usize);

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

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let aliases: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node))
            .chain(doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)))
            .sum();
        if aliases > self.0 {
            return Err(ServerError::new(format!("query has {aliases} aliases; at most {} are allowed", self.0), None));
        }
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
) -> GraphQLResponse {
    if queries_only {
        let is_mutation = match req.parsed_query() {
            Ok(doc) => doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query),
            Err(e) => return finish(async_graphql::Response::from_errors(vec![e])),
        };
        if is_mutation {
            let e = ServerError::new("GET requests may only run queries; use POST", None);
            return finish(async_graphql::Response::from_errors(vec![e]));
        }
    }
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth = match auth::authenticate(state, auth_header).await {
        Ok(a) => a,
        Err(e) => {
            let err: async_graphql::Error = e.into();
            return finish(async_graphql::Response::from_errors(vec![err.into_server_error(Default::default())]));
        }
    };
    let req = req.data(auth).data(client_ip(state, headers, peer));
    finish(schema.execute(req).await)
}

pub async fn graphql_post(
    State((state, schema)): State<(AppState, AppSchema)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> GraphQLResponse {
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
                GraphQLWebSocket::new(socket, schema, protocol)
                    .on_connection_init(move |payload| ws_init(state, ip, payload))
                    .serve()
            })
            .into_response();
    }
    match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(req, &()).await {
        Ok(r) => execute(&state, &schema, &headers, peer, r.into_inner(), true).await.into_response(),
        Err(e) => e.into_response(),
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
    Ok(data)
}

pub async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("MinisPod Gateway")
            .finish(),
    )
}

pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}
