//! Live metric subscriptions resolved and serialised once per tick, not once per subscriber.
//!
//! A `podMetrics`/`nodeMetrics` subscription's result depends only on its document, operation
//! name and variables (the caller being an administrator is checked up front), so every admin
//! subscriber with the same request can share one execution. The first one starts a task that
//! runs the request through the schema as usual (parsing, limits, validation, the resolver and
//! the shared poller) and serialises each response to JSON once; every subscriber of the same
//! request, on any connection, receives those bytes. Like the pollers, the task stops when its
//! last subscriber leaves, and a slow subscriber only skips responses.
//!
//! async-graphql's WebSocket protocol handler stays in charge of the protocol (ids, `complete`,
//! errors, pings); the shared stream gives it a small placeholder response per item, and the
//! connection's sink swaps the placeholder's payload for the shared JSON (`ConnectionFanout`).
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{Data, Name, Request, Response, Value, parser::types::OperationType};
use futures::{StreamExt, stream::BoxStream};
use tokio::{sync::broadcast, task::AbortHandle};

/// Root fields whose subscriptions are shared: admin-only and a pure function of the arguments.
const SHARED_FIELDS: [&str; 2] = ["podMetrics", "nodeMetrics"];

/// Responses a subscriber may fall behind by before it skips to the newest.
const BACKLOG: usize = 4;

/// Placeholder key in `data`: not a valid GraphQL name, so no real response can contain it.
const MARKER: &str = "minispod shared response";

/// One response of a shared subscription, serialised (`{"data":…}`), or the end of the stream.
#[derive(Clone)]
enum Item {
    Next(Arc<str>),
    End,
}

/// What identifies a shareable request: the document, the operation and the variables.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    operation: Option<String>,
    variables: String,
}

struct Entry {
    generation: u64,
    tx: broadcast::Sender<Item>,
    last: Arc<Mutex<Option<Arc<str>>>>,
    subscribers: usize,
    task: AbortHandle,
}

/// The running shared subscriptions of one gateway.
#[derive(Default)]
pub struct SharedSubscriptions {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
    generations: AtomicU64,
}

impl SharedSubscriptions {
    /// Running shared executions (for tests and diagnostics).
    pub fn active(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Joins the shared execution of `request`, starting it with `run` (the schema's
    /// `execute_stream` with this subscriber's session) if none runs. Each item is a placeholder
    /// registered in `conn`, whose sink replaces it with the shared JSON.
    fn subscribe<R>(&self, key: Key, conn: &ConnectionFanout, run: R) -> BoxStream<'static, Response>
    where
        R: FnOnce() -> BoxStream<'static, Response>,
    {
        let (mut rx, newest, generation) = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = entries.entry(key.clone()).or_insert_with(|| {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                let (tx, _) = broadcast::channel(BACKLOG);
                let last = Arc::new(Mutex::new(None));
                let task =
                    tokio::spawn(drive(run(), tx.clone(), last.clone(), self.entries.clone(), key.clone(), generation))
                        .abort_handle();
                Entry { generation, tx, last, subscribers: 0, task }
            });
            entry.subscribers += 1;
            let newest = entry.last.lock().unwrap_or_else(PoisonError::into_inner).clone();
            (entry.tx.subscribe(), newest, entry.generation)
        };
        let guard = Leave { entries: self.entries.clone(), key: Some(key), generation };
        let conn = conn.clone();
        async_stream::stream! {
            let _guard = guard;
            if let Some(json) = &newest {
                yield conn.placeholder(json.clone());
            }
            loop {
                match rx.recv().await {
                    // The newest response may also still be on its way through the channel.
                    Ok(Item::Next(json)) if newest.as_ref().is_some_and(|n| Arc::ptr_eq(n, &json)) => {}
                    Ok(Item::Next(json)) => yield conn.placeholder(json),
                    Ok(Item::End) | Err(broadcast::error::RecvError::Closed) => break,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "slow subscriber skipped samples");
                    }
                }
            }
        }
        .boxed()
    }
}

/// Runs one shared execution: serialises each response once and hands it to every subscriber.
async fn drive(
    mut responses: BoxStream<'static, Response>,
    tx: broadcast::Sender<Item>,
    last: Arc<Mutex<Option<Arc<str>>>>,
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
    key: Key,
    generation: u64,
) {
    while let Some(resp) = responses.next().await {
        let json: Arc<str> = match serde_json::to_string(&resp) {
            Ok(s) => s.into(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialise a subscription response");
                continue;
            }
        };
        *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(json.clone());
        // Nobody listening is not an error: the last subscriber is just leaving.
        let _ = tx.send(Item::Next(json));
    }
    // Unregister first, so a newcomer starts a new execution instead of waiting on this one.
    {
        let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.get(&key).is_some_and(|e| e.generation == generation) {
            entries.remove(&key);
        }
    }
    let _ = tx.send(Item::End);
}

/// Unregisters one subscriber when its stream is dropped; the last one stops the execution.
struct Leave {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
    key: Option<Key>,
    generation: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(&key)
            && e.generation == self.generation
        {
            e.subscribers = e.subscribers.saturating_sub(1);
            if e.subscribers == 0 {
                e.task.abort();
                entries.remove(&key);
            }
        }
    }
}

/// The key of `request` if it can be shared: a single subscription operation whose root
/// selections are all shared fields. Anything else (including documents that do not parse) runs
/// on its own, so errors are reported exactly as before.
fn shareable(request: &Request) -> Option<Key> {
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    let mut ops = doc.operations.iter();
    let (_, op) = ops.next()?;
    if ops.next().is_some() || op.node.ty != OperationType::Subscription {
        return None;
    }
    let items = &op.node.selection_set.node.items;
    let all_shared = !items.is_empty()
        && items.iter().all(|item| match &item.node {
            async_graphql::parser::types::Selection::Field(f) => {
                SHARED_FIELDS.contains(&f.node.name.node.as_str()) && f.node.directives.is_empty()
            }
            _ => false,
        });
    if !all_shared {
        return None;
    }
    Some(Key {
        query: request.query.clone(),
        operation: request.operation_name.clone(),
        variables: serde_json::to_string(&request.variables).ok()?,
    })
}

/// Per WebSocket connection: the shared responses its stream has handed out and its sink has not
/// yet sent, by placeholder number.
#[derive(Clone, Default)]
pub struct ConnectionFanout {
    pending: Arc<Mutex<HashMap<u64, Arc<str>>>>,
    next: Arc<AtomicU64>,
}

impl ConnectionFanout {
    fn placeholder(&self, json: Arc<str>) -> Response {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(n, json);
        let mut data = async_graphql::indexmap::IndexMap::new();
        data.insert(Name::new(MARKER), Value::from(n));
        Response::new(Value::Object(data))
    }

    /// Replaces a placeholder message (`{"type":"next","id":…,"payload":{"data":{MARKER:n}}}`)
    /// with the shared response as its payload; `None` for any other message.
    pub fn resolve(&self, text: &str) -> Option<String> {
        const HEAD: &str = "\"payload\":{\"data\":{\"";
        let body = text.strip_suffix("}}}")?;
        let at = body.rfind(HEAD)?;
        let n = body[at + HEAD.len()..].strip_prefix(MARKER)?.strip_prefix("\":")?;
        let n = n.parse::<u64>().ok()?;
        let json = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&n)?;
        let head = &text[..at];
        let mut out = String::with_capacity(head.len() + json.len() + 12);
        out.push_str(head);
        out.push_str("\"payload\":");
        out.push_str(&json);
        out.push('}');
        Some(out)
    }

    /// Runs `request` shared with every other admin subscriber of the same request when it is
    /// shareable, otherwise with `run` alone.
    pub fn execute_stream<R>(
        &self,
        shared: &SharedSubscriptions,
        request: Request,
        is_admin: bool,
        run: R,
    ) -> BoxStream<'static, Response>
    where
        R: FnOnce(Request) -> BoxStream<'static, Response>,
    {
        match shareable(&request).filter(|_| is_admin) {
            Some(key) => shared.subscribe(key, self, move || run(request)),
            None => run(request),
        }
    }
}

/// The session's data, as the executor sees it (for the admin check).
pub fn session_get<T: 'static>(data: &Data) -> Option<&T> {
    data.get(&std::any::TypeId::of::<T>()).and_then(|d| d.downcast_ref::<T>())
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn req(q: &str) -> Request {
        Request::new(q)
    }

    #[test]
    fn only_single_metric_subscriptions_are_shared() {
        assert!(shareable(&req("subscription { podMetrics(namespace: \"a\") { timestamp } }")).is_some());
        assert!(shareable(&req("subscription S { m: nodeMetrics { timestamp } }")).is_some());
        assert!(shareable(&req("subscription { podLogs(namespace: \"a\", pod: \"b\") }")).is_none());
        assert!(shareable(&req("subscription { walletUpdates { balance } }")).is_none());
        assert!(shareable(&req("query { podMetrics { timestamp } }")).is_none());
        assert!(
            shareable(&req("subscription { ...F } fragment F on SubscriptionRoot { podMetrics { timestamp } }"))
                .is_none()
        );
        assert!(shareable(&req("subscription { podMetrics @include(if: $x) { timestamp } }")).is_none());
        assert!(shareable(&req("subscription { podMetrics { timestamp } ")).is_none());
    }

    #[test]
    fn placeholders_are_swapped_for_the_shared_payload() {
        let conn = ConnectionFanout::default();
        let json: Arc<str> = r#"{"data":{"podMetrics":{"timestamp":"t"}}}"#.into();
        let resp = conn.placeholder(json);
        // As async-graphql writes it: type, id, payload.
        let resp = serde_json::to_string(&resp).unwrap();
        let msg = format!(r#"{{"type":"next","id":"a\"payload\":{{","payload":{resp}}}"#);
        let out = conn.resolve(&msg).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({ "type": "next", "id": "a\"payload\":{", "payload": { "data": { "podMetrics": { "timestamp": "t" } } } })
        );
        assert!(conn.pending.lock().unwrap().is_empty());
        // Anything else passes unchanged.
        let other = r#"{"type":"next","id":"1","payload":{"data":{"x":1}}}"#.to_string();
        assert_eq!(conn.resolve(&other), None);
    }

    #[tokio::test]
    async fn one_execution_per_request_stopped_by_the_last_subscriber() {
        let shared = SharedSubscriptions::default();
        let runs = Arc::new(AtomicU64::new(0));
        let run = |runs: Arc<AtomicU64>| {
            move |_: Request| {
                runs.fetch_add(1, Ordering::SeqCst);
                let items = stream::iter(0..3).map(|i| Response::new(Value::from(i)));
                items.chain(stream::pending()).boxed()
            }
        };
        let q = "subscription { podMetrics { timestamp } }";
        let (c1, c2) = (ConnectionFanout::default(), ConnectionFanout::default());
        let mut a = c1.execute_stream(&shared, req(q), true, run(runs.clone()));
        let mut b = c2.execute_stream(&shared, req(q), true, run(runs.clone()));
        assert_eq!(shared.active(), 1);
        let first = serde_json::to_string(&a.next().await.unwrap()).unwrap();
        let sent = c1.resolve(&format!(r#"{{"type":"next","id":"1","payload":{first}}}"#));
        assert_eq!(sent.as_deref(), Some(r#"{"type":"next","id":"1","payload":{"data":0}}"#));
        assert!(b.next().await.is_some());
        // Not admin: runs on its own.
        let mut own = c2.execute_stream(&shared, req(q), false, run(runs.clone()));
        assert!(own.next().await.is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        drop((a, b));
        assert_eq!(shared.active(), 0);
    }

    #[tokio::test]
    async fn a_finished_execution_completes_every_subscriber() {
        let shared = SharedSubscriptions::default();
        let q = "subscription { podMetrics(intervalSeconds: 0) { timestamp } }";
        let conn = ConnectionFanout::default();
        let run = |_: Request| stream::iter([Response::new(Value::Null)]).boxed();
        let items: Vec<_> = conn.execute_stream(&shared, req(q), true, run).collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(shared.active(), 0);
    }
}
