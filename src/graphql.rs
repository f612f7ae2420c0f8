//! The GraphQL schema (merged roots, limits) and its HTTP and WebSocket handlers.
use std::{net::SocketAddr, sync::Arc};

use async_graphql::{
    Context, MergedObject, MergedSubscription, Schema, SchemaBuilder, ServerError, ServerResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use crate::{
    auth::{self, Auth},
    catalog::cache::{CatalogCache, Fill},
    state::AppState,
};

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    crate::users::graphql::UserQuery,
    crate::catalog::graphql::CatalogQuery,
    crate::billing::graphql::WalletQuery,
    crate::subscriptions::graphql::SubscriptionQuery,
    crate::subscriptions::graphql::CheckoutQuery,
    crate::instances::graphql::InstanceQuery,
    crate::cluster::graphql::ClusterQuery,
    crate::reports::graphql::ReportQuery,
    crate::reports::analytics::AnalyticsQuery,
    crate::notifications::graphql::NotificationQuery,
    crate::billing::admin_graphql::WalletAdminQuery,
    crate::subscriptions::subscribers::PlanSubscribersQuery,
    crate::coupons::graphql::CouponQuery,
    crate::coupons::admin_graphql::CouponAdminQuery,
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
    crate::notifications::graphql::NotificationMutation,
    crate::users::admin_graphql::AdminUserMutation,
    crate::coupons::graphql::CouponMutation,
    crate::coupons::admin_graphql::CouponAdminMutation,
);

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(
    crate::billing::graphql::WalletSubscription,
    crate::cluster::graphql::ClusterSubscription,
    crate::instances::graphql::InstanceSubscription,
    crate::notifications::graphql::NotificationSubscription,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

mod expansion;
pub mod flat;
pub mod persisted;
pub mod transport;

/// The client address as seen by the gateway (or X-Forwarded-For when configured to trust it).
#[derive(Clone, Debug)]
pub struct ClientIp(pub Option<String>);

/// Request-scoped accessors used by every resolver.
pub trait ContextExt {
    fn state(&self) -> &AppState;
    fn auth(&self) -> &Auth;
    fn client_ip(&self) -> Option<&str>;
    /// For fields of shared objects that only some viewers may read: the value when `check`
    /// passes, else `null` plus the refusal in `errors` with the field's path, as the spec has
    /// a nullable field fail. (Returning the error instead makes async-graphql drop the field
    /// from its object, which Apollo reports as a missing field.)
    fn null_unless<T>(&self, check: crate::error::AppResult<T>) -> Option<T>;
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
    fn null_unless<T>(&self, check: crate::error::AppResult<T>) -> Option<T> {
        match check {
            Ok(v) => Some(v),
            Err(e) => {
                let err = async_graphql::Error::from(e).into_server_error(self.item.pos);
                self.add_error(self.set_error_path(err));
                None
            }
        }
    }
}

pub fn build_schema(state: Option<AppState>) -> AppSchema {
    schema_builder(state).finish()
}

/// The schema with its limits and extensions, before `finish`: tests add extensions of their own
/// (tests/api/examples.rs validates the example documents without executing them).
pub fn schema_builder(state: Option<AppState>) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let limits =
        state.as_ref().map(|s| s.config.graphql.clone()).unwrap_or_else(|| crate::config::Config::default().graphql);
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_depth * 2 + 8)
        .limit_directives(16)
        // First, so it observes the refusals of the extensions after it.
        .extension(crate::telemetry::graphql::Observe(state.as_ref().map(|s| s.metrics.clone()).unwrap_or_default()))
        .extension(DocumentLimits::from_config(&limits))
        .extension(crate::text::TextGuard);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder
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
/// complexity alone prices them too cheaply), and the fields that fragment spreads expand to
/// (validation expands every spread, so nested spreads multiply its work).
#[derive(Clone, Copy)]
struct DocumentLimits {
    max_aliases: usize,
    max_depth: usize,
    max_expanded_fields: u64,
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

pub(crate) fn check_nesting(query: &str, max_depth: usize) -> ServerResult<()> {
    // Arguments and lists nest too; allow some room above the selection depth limit.
    if nesting(query) > max_depth * 2 + 8 {
        return Err(ServerError::new("query is nested too deep", None));
    }
    Ok(())
}

/// Refuses a parsed document that expands to more fields than allowed, before validation
/// expands it.
fn check_expansion(doc: &ExecutableDocument, max: u64) -> ServerResult<()> {
    let fields = expansion::expanded_fields(doc);
    if fields > max {
        let mut err = ServerError::new(
            format!("query expands to {fields} fields (counting fragment spreads); at most {max} are allowed"),
            None,
        );
        // WebSocket errors skip `finish`: give this one its code here.
        err.extensions.get_or_insert_with(Default::default).set("code", "BAD_USER_INPUT");
        return Err(err);
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

impl DocumentLimits {
    fn from_config(limits: &crate::config::GraphqlLimits) -> Self {
        Self {
            max_aliases: limits.max_aliases,
            max_depth: limits.max_depth,
            max_expanded_fields: limits.max_expanded_fields,
        }
    }

    /// Checks the request's document, parsing it (once: the request keeps it) only after the
    /// text passed the nesting check, and refusing it before anything expands its fragments.
    fn check(&self, req: &mut async_graphql::Request) -> ServerResult<()> {
        check_nesting(&req.query, self.max_depth)?;
        let doc = req.parsed_query()?;
        check_aliases(doc, self.max_aliases)?;
        check_expansion(doc, self.max_expanded_fields)
    }
}

// Every operation passes here: WebSocket ones are checked here first; HTTP ones were checked by
// `execute`, and repeating the two linear counts on the kept document is cheap. This must be
// `prepare_request`, not `parse_query`: the schema's parse step also runs its recursive-depth
// check, which expands every fragment spread.
#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        self.check(&mut request)?;
        next.run(ctx, request).await
    }
}

fn client_ip(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ClientIp {
    if !state.config.trust_forwarded_for {
        return ClientIp(Some(peer.ip().to_string()));
    }
    let values = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    ClientIp(Some(auth::client_ip::from_forwarded(values, state.config.trusted_proxies, peer.ip()).to_string()))
}

/// Every error leaves with a code: engine errors (parse, validation, limits) lack one and are
/// the client's fault.
fn finish(mut resp: async_graphql::Response) -> async_graphql::Response {
    for err in &mut resp.errors {
        let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if !has_code {
            err.extensions.get_or_insert_with(Default::default).set("code", "BAD_USER_INPUT");
        }
    }
    crate::telemetry::graphql::tag_errors(&mut resp.errors);
    resp
}

/// One operation's answer: stored bytes from the catalog cache, or a response.
enum Answer {
    Cached(bytes::Bytes),
    Fresh(async_graphql::Response),
}

impl Answer {
    fn refused(e: impl Into<ServerError>) -> Self {
        Answer::Fresh(async_graphql::Response::from_errors(vec![e.into()]))
    }

    fn into_bytes(self) -> bytes::Bytes {
        match self {
            Answer::Cached(body) => body,
            Answer::Fresh(resp) => match serde_json::to_vec(&finish(resp)) {
                Ok(body) => body.into(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialise a GraphQL response");
                    bytes::Bytes::from_static(
                        br#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#,
                    )
                }
            },
        }
    }
}

/// Who is asking and from where: decided once per HTTP request (a batch shares it).
struct Caller {
    auth: Auth,
    ip: ClientIp,
}

async fn caller(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Result<Caller, Response> {
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match auth::authenticate(state, auth_header).await {
        Ok(auth) => Ok(Caller { auth, ip: client_ip(state, headers, peer) }),
        Err(e) => Err(e.into_graphql_response()),
    }
}

/// Runs one operation through everything a request passes: persisted-query resolution, the
/// catalog answer cache, the document limits, the GET rule, then the schema (whose extensions
/// add the text checks and limits again).
async fn execute(
    state: &AppState,
    schema: &AppSchema,
    caller: &Caller,
    mut req: async_graphql::Request,
    queries_only: bool,
) -> Answer {
    let auth = &caller.auth;
    let is_admin = auth.viewer().is_ok_and(|v| v.is_admin());
    let register = match state.persisted.resolve(&mut req, is_admin) {
        Ok(r) => r,
        Err(e) => return Answer::refused(e.into_server_error()),
    };
    // Cached catalog answers are found before any parsing, by a hash of the normalised request:
    // only requests that passed every check below and read nothing but the public catalog were
    // stored.
    let cache = &state.catalog_cache;
    let (key, version) = (CatalogCache::key(is_admin, &req), cache.version());
    if let Some(stored) = cache.get(&key, version)
        && let Some(body) = cache.answer(&state.db, &stored).await
    {
        return Answer::Cached(body);
    }
    if let Err(e) = DocumentLimits::from_config(&state.config.graphql).check(&mut req) {
        return Answer::refused(e);
    }
    if let persisted::Resolved::Register(hash) = register {
        state.persisted.register(hash, &req.query);
    }
    let operation = req.operation_name.clone();
    let doc = match req.parsed_query() {
        Ok(doc) => doc,
        Err(e) => return Answer::refused(e),
    };
    if queries_only && doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query) {
        return Answer::refused(ServerError::new("GET requests may only run queries; use POST", None));
    }
    // One request fills a missing entry; concurrent ones for the same key wait for its answer.
    if CatalogCache::cacheable(doc, operation.as_deref()) {
        let stored = match cache.fill(key, version) {
            Fill::Hit(stored) => Some(stored),
            Fill::Wait(waiter) => waiter.answer().await,
            Fill::Lead(guard) => return lead_fill(state, schema, caller, req, guard).await,
        };
        if let Some(stored) = stored
            && let Some(body) = cache.answer(&state.db, &stored).await
        {
            return Answer::Cached(body);
        }
    }
    Answer::Fresh(run(state, schema, caller, req).await)
}

/// Executes a request as given.
async fn run(
    state: &AppState,
    schema: &AppSchema,
    caller: &Caller,
    req: async_graphql::Request,
) -> async_graphql::Response {
    let req = with_loaders(req.data(caller.auth.clone()).data(caller.ip.clone()), state);
    // Unconstrained: tokio's cooperative budget would otherwise force a yield after ~128 loader
    // wake-ups, splitting one nesting level of a large list into several dataloader batches.
    // The work per request is bounded by the depth/complexity limits.
    tokio::task::unconstrained(schema.execute(req)).await
}

/// Renders a catalog answer with placeholders for quota, stores it unless it has errors, and
/// answers with the current quota filled in (or, when it cannot be, executes again without
/// placeholders).
async fn lead_fill(
    state: &AppState,
    schema: &AppSchema,
    caller: &Caller,
    req: async_graphql::Request,
    guard: crate::catalog::cache::FillGuard<'_>,
) -> Answer {
    let cache = &state.catalog_cache;
    // Kept to execute again with real values if the quota cannot be filled in (a plan deleted
    // meanwhile, or the quota table unreadable).
    let mut again = async_graphql::Request::new(req.query.clone()).variables(req.variables.clone());
    again.operation_name = req.operation_name.clone();
    let resp = run(state, schema, caller, req.data(cache.holes())).await;
    let spliced = if resp.is_ok() {
        match serde_json::to_vec(&resp) {
            Ok(body) => {
                let stored = guard.finish(bytes::Bytes::from(body));
                cache.answer(&state.db, &stored).await
            }
            Err(_) => None,
        }
    } else {
        // Not stored (errors may depend on more than the catalog), but its placeholders are
        // filled in all the same.
        drop(guard);
        cache.splice(&state.db, Answer::Fresh(resp).into_bytes()).await
    };
    match spliced {
        Some(body) => Answer::Cached(body),
        None => Answer::Fresh(run(state, schema, caller, again).await),
    }
}

/// Persisted-query resolution for WebSocket operations (HTTP does it in `execute`, before the
/// catalog cache): fills in the document, and registers it once it passed the document limits.
pub(crate) fn resolve_persisted(
    state: &AppState,
    mut req: async_graphql::Request,
    admin: bool,
) -> Result<async_graphql::Request, ServerError> {
    if let persisted::Resolved::Register(hash) =
        state.persisted.resolve(&mut req, admin).map_err(crate::error::AppError::into_server_error)?
    {
        DocumentLimits::from_config(&state.config.graphql).check(&mut req)?;
        state.persisted.register(hash, &req.query);
    }
    Ok(req)
}

fn json_body(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// POST: one operation, or a batch (a JSON array) whose operations run one after the other,
/// each through the same checks, cache and limits as a single one; the answer is an array in
/// the same order.
pub async fn graphql_post(
    State((state, schema)): State<(AppState, AppSchema)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let operations = match transport::read_post(req, state.config.graphql.max_batch).await {
        Ok(ops) => ops,
        Err(e) => return e.into_graphql_response(),
    };
    let caller = match caller(&state, &headers, peer).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match operations {
        transport::Operations::Single(op) => {
            json_body(execute(&state, &schema, &caller, *op, false).await.into_bytes())
        }
        transport::Operations::Batch(ops) => {
            let mut body = Vec::from(&b"["[..]);
            for (i, op) in ops.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&execute(&state, &schema, &caller, op, false).await.into_bytes());
            }
            body.push(b']');
            json_body(body.into())
        }
    }
}

/// GET serves queries from the URL, or upgrades to a GraphQL WebSocket (`crate::ws`).
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
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        let ip = client_ip(&state, &headers, peer);
        return crate::ws::upgrade(state, schema, crate::ws::protocol(&headers), ws, ip);
    }
    let op = match transport::read_get(req.uri()) {
        Ok(op) => op,
        Err(e) => return e.into_graphql_response(),
    };
    let caller = match caller(&state, &headers, peer).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    json_body(execute(&state, &schema, &caller, op, true).await.into_bytes())
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
