//! The GraphQL operation as operators see it: a `graphql` span named after the operation, its
//! metrics (count, latency, error codes; running subscriptions), one INFO line for errors the
//! engine raised itself (syntax, validation, limits: `AppError`s log themselves), and the
//! request id in `extensions.requestId` of every error.
use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Instant,
};

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
        NextValidation,
    },
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use futures::{Stream, StreamExt, stream::BoxStream};
use tracing::{Instrument as _, Span, field::Empty};

use super::{Metrics, RequestId, metrics::GaugeGuard};

/// The extension factory; register it first so it sees every other extension's refusals.
pub struct Observe(pub Metrics);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObserveOperation {
            metrics: self.0.clone(),
            span: tracing::info_span!("graphql", operation = Empty, operation_type = Empty),
            op: Arc::default(),
        })
    }
}

/// What is known about the operation so far.
#[derive(Default)]
struct Op {
    requested_name: Option<String>,
    name: Option<String>,
    ty: Option<&'static str>,
    valid: bool,
}

struct ObserveOperation {
    metrics: Metrics,
    span: Span,
    op: Arc<Mutex<Op>>,
}

fn with_op<T>(op: &Mutex<Op>, f: impl FnOnce(&mut Op) -> T) -> T {
    f(&mut op.lock().unwrap_or_else(PoisonError::into_inner))
}

fn type_label(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// `extensions.code`; errors without one are the client's (see `graphql::finish`).
fn code(err: &ServerError) -> &str {
    match err.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(s)) => s,
        _ => "BAD_USER_INPUT",
    }
}

/// Adds `extensions.requestId` to every error.
pub fn tag_errors(errors: &mut [ServerError]) {
    let Some(id) = RequestId::current() else {
        return;
    };
    for err in errors {
        err.extensions.get_or_insert_with(Default::default).set("requestId", id.as_str());
    }
}

/// Engine errors (no code yet) are logged here, once; `AppError`s were logged when raised.
fn log_engine_errors(errors: &[ServerError]) {
    for err in errors.iter().filter(|e| e.extensions.as_ref().is_none_or(|x| x.get("code").is_none())) {
        tracing::info!(code = "BAD_USER_INPUT", message = %err.message, "operation refused");
    }
}

impl ObserveOperation {
    /// (operation label, type label) for metrics.
    fn labels(&self) -> (String, &'static str) {
        let (name, ty) = with_op(&self.op, |o| (o.name.clone().or_else(|| o.requested_name.clone()), o.ty));
        (self.metrics.operation_label(name.as_deref()), ty.unwrap_or("unknown"))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ObserveOperation {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let resp = next.run(ctx).instrument(self.span.clone()).await;
        let (name, ty) = self.labels();
        self.span.in_scope(|| log_engine_errors(&resp.errors));
        self.metrics.graphql_operation(&name, ty, Some(started.elapsed()), resp.errors.iter().map(code));
        resp
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let inner = next.run(ctx, stream);
        Box::pin(Observed {
            inner,
            ext: ObserveOperation { metrics: self.metrics.clone(), span: self.span.clone(), op: self.op.clone() },
            started: Instant::now(),
            live: None,
            codes: Vec::new(),
            done: false,
        })
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        with_op(&self.op, |o| o.requested_name = request.operation_name.clone());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let requested = with_op(&self.op, |o| o.requested_name.clone());
        let found = match (&doc.operations, requested.as_deref()) {
            (DocumentOperations::Single(op), None) => Some((None, op.node.ty)),
            (DocumentOperations::Multiple(ops), Some(name)) => {
                ops.get(name).map(|op| (Some(name.to_string()), op.node.ty))
            }
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
                ops.iter().next().map(|(name, op)| (Some(name.to_string()), op.node.ty))
            }
            _ => None,
        };
        if let Some((name, ty)) = found {
            let ty = type_label(ty);
            self.span.record("operation", name.as_deref().unwrap_or("anonymous"));
            self.span.record("operation_type", ty);
            with_op(&self.op, |o| {
                o.name = name;
                o.ty = Some(ty);
            });
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        with_op(&self.op, |o| o.valid = true);
        Ok(result)
    }
}

/// An operation run as a stream (every operation over WebSocket). A valid subscription counts
/// as started and live from the moment it is known; anything else is counted when it ends.
struct Observed<'s> {
    inner: BoxStream<'s, Response>,
    ext: ObserveOperation,
    started: Instant,
    live: Option<(GaugeGuard, String)>,
    codes: Vec<String>,
    done: bool,
}

impl Stream for Observed<'_> {
    type Item = Response;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let this = self.get_mut();
        let _entered = this.ext.span.enter();
        let item = this.inner.poll_next_unpin(cx);
        if this.live.is_none() && !this.done {
            let subscription = with_op(&this.ext.op, |o| o.valid && o.ty == Some("subscription"));
            if subscription {
                let (name, ty) = this.ext.labels();
                this.ext.metrics.graphql_operation(&name, ty, None, []);
                this.live = Some((this.ext.metrics.live_subscription(&name), name));
            }
        }
        match item {
            Poll::Ready(Some(mut resp)) => {
                log_engine_errors(&resp.errors);
                match &this.live {
                    Some((_, name)) => {
                        for err in &resp.errors {
                            this.ext.metrics.graphql_error(name, "subscription", code(err));
                        }
                    }
                    None => this.codes.extend(resp.errors.iter().map(|e| code(e).to_string())),
                }
                tag_errors(&mut resp.errors);
                Poll::Ready(Some(resp))
            }
            Poll::Ready(None) => {
                if !this.done && this.live.is_none() {
                    let (name, ty) = this.ext.labels();
                    let elapsed = this.started.elapsed();
                    this.ext.metrics.graphql_operation(&name, ty, Some(elapsed), this.codes.iter().map(String::as_str));
                }
                this.done = true;
                this.live = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
