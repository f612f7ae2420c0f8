//! Whole-response cache for public catalog queries. The catalog is read far more often than it
//! changes, and one nested catalog answer costs thousands of field resolutions; a cached answer
//! costs a hash lookup.
//!
//! Consistency: every committed catalog change bumps a version before its request answers, so
//! the next request on this replica never sees the old answer. Other replicas hear of the change
//! through PostgreSQL NOTIFY (milliseconds). An answer is stored under the version read *before*
//! it was computed, so an answer that raced a change is never served after it.
//!
//! Quota changes (every subscribe and cancel) bump a second version instead and keep the stored
//! answers: those hold placeholders for the quota fields, filled from one table of every plan's
//! quota that is read again after each quota change (`super::splice`).
//!
//! Memory: entries are keyed by a SHA-256 of the normalised request (comments and insignificant
//! whitespace removed), never by its text, and the cache holds at most a configured number of
//! bytes, least recently used first out. Concurrent misses of one key share one execution
//! (single flight), so an invalidation under load renders each answer once.
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection};
use bytes::Bytes;
use lru::LruCache;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use sha2::{Digest, Sha256};
use tokio::{sync::watch, task::AbortHandle};

use super::splice::{QuotaHoles, QuotaTable, Template, read_quota};
use crate::db::{self, Db};

const CHANNEL: &str = "minispod_catalog";
/// Payload prefix of a quota change (a catalog change's payload is the bare replica id).
const QUOTA: &str = "quota:";
/// Root fields whose answers depend only on the catalog (and on whether the viewer is an admin).
const PUBLIC_ROOTS: &[&str] = &["categories", "category", "services", "service", "plan", "__typename"];
/// What an entry costs besides its answer: the 32-byte key (stored twice: map and list) and the
/// map slot and list node around it.
const ENTRY_OVERHEAD: usize = 128;

/// SHA-256 of (admin, operation name, normalised document, variables).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey([u8; 32]);

/// A stored answer and its latest rendering with the quota filled in.
pub struct Stored {
    template: Template,
    /// (quota version, answer): rendered once per quota change, not once per request.
    rendered: Mutex<Option<(u64, Bytes)>>,
}

struct Entries {
    lru: LruCache<CacheKey, Arc<Stored>>,
    bytes: usize,
    /// The catalog version every stored entry belongs to; older entries are dropped as a whole.
    version: u64,
}

impl Entries {
    /// Forgets every entry of a version older than `version`.
    fn advance(&mut self, version: u64) {
        if version > self.version {
            self.lru.clear();
            self.bytes = 0;
            self.version = version;
        }
    }
}

/// The template and, when it has holes, one rendering of it.
fn cost(stored: &Stored) -> usize {
    ENTRY_OVERHEAD + stored.template.size() * if stored.template.has_holes() { 2 } else { 1 }
}

#[derive(Clone)]
enum Flight {
    Running,
    /// The leader's answer, or None when it had none to share (an error, or it was cancelled).
    Done(Option<Arc<Stored>>),
}

/// Cache counters for /metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
    /// Requests waiting right now for another request to fill their entry.
    pub waiting: u64,
    /// Reads of the quota table (one per quota change that a request then needed).
    pub quota_reads: u64,
}

pub struct CatalogCache {
    version: AtomicU64,
    quota_version: AtomicU64,
    quota_reads: AtomicU64,
    /// The latest quota table; the lock makes concurrent requests read it once per change.
    quota: tokio::sync::Mutex<Option<QuotaTable>>,
    holes: QuotaHoles,
    hits: AtomicU64,
    misses: AtomicU64,
    waiting: AtomicU64,
    capacity: usize,
    entries: Mutex<Entries>,
    flights: Mutex<HashMap<(CacheKey, u64), watch::Sender<Flight>>>,
    via_postgres: bool,
    /// Sent with our notifications; our own echo is ignored (we bumped when we sent it).
    replica: String,
    listener: Mutex<Option<AbortHandle>>,
}

/// What a cacheable request that missed should do.
pub enum Fill<'a> {
    /// Filled by another request meanwhile.
    Hit(Arc<Stored>),
    /// Execute, then `finish` (or drop, which lets the waiters execute on their own).
    Lead(FillGuard<'a>),
    /// Another request is executing the same key: wait for its answer.
    Wait(Waiter<'a>),
}

impl CatalogCache {
    pub async fn start(db: &Db, capacity_bytes: usize) -> anyhow::Result<Arc<Self>> {
        let cache = Arc::new(Self::new(capacity_bytes, db.backend() == DatabaseBackend::Postgres));
        if cache.via_postgres {
            let weak = Arc::downgrade(&cache);
            let handle = db::listen(db, CHANNEL, move |payload| {
                let Some(c) = weak.upgrade() else { return };
                match payload.strip_prefix(QUOTA) {
                    Some(sender) if sender != c.replica => c.bump_quota(),
                    None if payload != c.replica => c.bump(),
                    _ => {}
                }
            })
            .await?;
            if let Ok(mut slot) = cache.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(cache)
    }

    fn new(capacity: usize, via_postgres: bool) -> Self {
        Self {
            version: AtomicU64::new(0),
            quota_version: AtomicU64::new(0),
            quota_reads: AtomicU64::new(0),
            quota: tokio::sync::Mutex::new(None),
            holes: QuotaHoles::random(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            capacity,
            entries: Mutex::new(Entries { lru: LruCache::unbounded(), bytes: 0, version: 0 }),
            flights: Mutex::new(HashMap::new()),
            via_postgres,
            replica: uuid::Uuid::new_v4().to_string(),
            listener: Mutex::new(None),
        }
    }

    /// A catalog change: plans' total quota and activity are part of the quota table too.
    fn bump(&self) {
        self.bump_quota();
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn bump_quota(&self) {
        self.quota_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Request data for a render that fills an entry: quota fields become placeholders.
    pub fn holes(&self) -> QuotaHoles {
        self.holes.clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    // A panic while holding either lock leaves nothing half-done that matters: keep going.
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<(CacheKey, u64), watch::Sender<Flight>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache key of a request. Computed before parsing (the fast path): its size does not
    /// depend on the request's, and padding the document with comments or whitespace does not
    /// make a new key.
    pub fn key(admin: bool, req: &async_graphql::Request) -> CacheKey {
        let mut hash = Sha256::new();
        hash.update([u8::from(admin)]);
        // Length-prefixed parts: no two different requests feed the hash the same bytes.
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        match &req.operation_name {
            Some(name) => part(format!("+{name}").as_bytes()),
            None => part(b"-"),
        }
        part(normalise(&req.query).as_bytes());
        part(&serde_json::to_vec(&req.variables).unwrap_or_default());
        CacheKey(hash.finalize().into())
    }

    /// Whether the selected operation only reads the public catalog (so its answer may be stored).
    pub fn cacheable(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
        only_public_roots(doc, operation)
    }

    pub fn get(&self, key: &CacheKey, version: u64) -> Option<Arc<Stored>> {
        let mut entries = self.entries();
        entries.advance(version);
        let hit = entries.lru.get(key).cloned();
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = {
            let e = self.entries();
            (e.lru.len(), e.bytes)
        };
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            bytes,
            waiting: self.waiting.load(Ordering::Relaxed),
            quota_reads: self.quota_reads.load(Ordering::Relaxed),
        }
    }

    /// A stored answer with the current quota; None when it cannot be had (the quota table
    /// could not be read, or lacks a plan the answer shows), and the request must execute.
    pub async fn answer(&self, db: &Db, stored: &Stored) -> Option<Bytes> {
        if !stored.template.has_holes() {
            return stored.template.render(&Default::default());
        }
        // Read before the table: a change after this read makes the next request read again.
        let wanted = self.quota_version.load(Ordering::Acquire);
        if let Some(body) = rendered_since(stored, wanted) {
            return Some(body);
        }
        let (version, plans) = self.quota_table(db, wanted).await?;
        let mut rendered = stored.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((v, body)) = rendered.as_ref()
            && *v >= version
        {
            return Some(body.clone());
        }
        let body = stored.template.render(&plans)?;
        *rendered = Some((version, body.clone()));
        Some(body)
    }

    /// An answer that is not stored, with its placeholders filled in.
    pub async fn splice(&self, db: &Db, body: Bytes) -> Option<Bytes> {
        let template = Template::parse(body, &self.holes);
        if !template.has_holes() {
            return template.render(&Default::default());
        }
        let (_, plans) = self.quota_table(db, self.quota_version.load(Ordering::Acquire)).await?;
        template.render(&plans)
    }

    /// The quota of every plan as of `wanted` or later, read once however many ask.
    async fn quota_table(
        &self,
        db: &Db,
        wanted: u64,
    ) -> Option<(u64, Arc<std::collections::HashMap<i64, super::splice::PlanQuota>>)> {
        let mut table = self.quota.lock().await;
        if let Some(t) = table.as_ref()
            && t.version >= wanted
        {
            return Some((t.version, t.plans.clone()));
        }
        let version = self.quota_version.load(Ordering::Acquire);
        self.quota_reads.fetch_add(1, Ordering::Relaxed);
        match read_quota(db).await {
            Ok(plans) => {
                let plans = Arc::new(plans);
                *table = Some(QuotaTable { version, plans: plans.clone() });
                Some((version, plans))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read plan quota for the catalog cache");
                None
            }
        }
    }

    /// Stores an answer computed at `version`, evicting the least recently used entries until it
    /// fits. An answer of an older version raced a change and is not stored.
    fn store(&self, key: CacheKey, version: u64, stored: Arc<Stored>) {
        let mut entries = self.entries();
        entries.advance(version);
        let size = cost(&stored);
        if version < entries.version || size > self.capacity {
            return;
        }
        if let Some(old) = entries.lru.pop(&key) {
            entries.bytes -= cost(&old);
        }
        while entries.bytes + size > self.capacity {
            match entries.lru.pop_lru() {
                Some((_, old)) => entries.bytes -= cost(&old),
                None => break,
            }
        }
        entries.bytes += size;
        entries.lru.put(key, stored);
    }

    /// For a cacheable request that missed: lead the fill of its entry, or wait for the request
    /// that leads it.
    pub fn fill(&self, key: CacheKey, version: u64) -> Fill<'_> {
        let mut flights = self.flights();
        // Checked under the flights lock: a leader stores its answer before it leaves the map.
        if let Some(stored) = self.get(&key, version) {
            return Fill::Hit(stored);
        }
        if let Some(flight) = flights.get(&(key, version)) {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            return Fill::Wait(Waiter { cache: self, flight: flight.subscribe() });
        }
        let (tx, _) = watch::channel(Flight::Running);
        flights.insert((key, version), tx);
        self.misses.fetch_add(1, Ordering::Relaxed);
        Fill::Lead(FillGuard { cache: self, key, version, done: false })
    }

    /// Call after committing a change the public catalog shows, other than quota.
    pub async fn changed(&self, db: &Db) {
        self.bump();
        self.tell_replicas(db, self.replica.clone()).await;
    }

    /// Call after committing a change of plans' used quota.
    pub async fn quota_changed(&self, db: &Db) {
        self.bump_quota();
        self.tell_replicas(db, format!("{QUOTA}{}", self.replica)).await;
    }

    /// The payload names this replica, so its own echo does not invalidate twice.
    async fn tell_replicas(&self, db: &Db, payload: String) {
        if self.via_postgres {
            let stmt = Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            );
            if let Err(e) = db.conn.execute_raw(stmt).await {
                tracing::warn!(error = %e, "cannot notify other replicas of a catalog change");
            }
        }
    }

    pub fn stop(&self) {
        if let Ok(mut slot) = self.listener.lock()
            && let Some(h) = slot.take()
        {
            h.abort();
        }
    }
}

fn rendered_since(stored: &Stored, version: u64) -> Option<Bytes> {
    let rendered = stored.rendered.lock().unwrap_or_else(PoisonError::into_inner);
    rendered.as_ref().filter(|(v, _)| *v >= version).map(|(_, body)| body.clone())
}

/// The one request filling an entry. Dropping it unfinished (an error answer, a cancelled
/// request) releases the waiters, which then execute on their own.
pub struct FillGuard<'a> {
    cache: &'a CatalogCache,
    key: CacheKey,
    version: u64,
    done: bool,
}

impl FillGuard<'_> {
    /// Stores the answer (rendered with `CatalogCache::holes`) and hands it to every waiter.
    pub fn finish(mut self, body: Bytes) -> Arc<Stored> {
        let template = Template::parse(body, &self.cache.holes);
        let stored = Arc::new(Stored { template, rendered: Mutex::new(None) });
        self.cache.store(self.key, self.version, stored.clone());
        self.release(Some(stored.clone()));
        stored
    }

    fn release(&mut self, answer: Option<Arc<Stored>>) {
        self.done = true;
        if let Some(tx) = self.cache.flights().remove(&(self.key, self.version)) {
            tx.send_replace(Flight::Done(answer));
        }
    }
}

impl Drop for FillGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.release(None);
        }
    }
}

pub struct Waiter<'a> {
    cache: &'a CatalogCache,
    flight: watch::Receiver<Flight>,
}

impl Waiter<'_> {
    /// The leader's answer; None when it had none to share (execute the request yourself).
    pub async fn answer(mut self) -> Option<Arc<Stored>> {
        let answer = match self.flight.wait_for(|f| matches!(f, Flight::Done(_))).await {
            Ok(f) => match &*f {
                Flight::Done(answer) => answer.clone(),
                Flight::Running => None,
            },
            Err(_) => None,
        };
        let counter = if answer.is_some() { &self.cache.hits } else { &self.cache.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.cache.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The request text as its tokens separated by at most one space: comments, commas and other
/// ignored characters go, strings stay verbatim. Equal for documents that differ only in what
/// GraphQL ignores, so padding cannot mint new keys. Runs before parsing: a text that is not
/// valid GraphQL is never stored, and if one normalises like a stored valid document it gets
/// that (public, same-viewer-class) answer, which anyone may ask for.
pub fn normalise(query: &str) -> String {
    let mut out = String::with_capacity(query.len().min(16 * 1024));
    let mut chars = query.chars().peekable();
    let mut gap = false;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => gap = true,
            '#' => {
                while chars.next_if(|&n| n != '\n' && n != '\r').is_some() {}
                gap = true;
            }
            _ => {
                if gap && out.chars().next_back().is_some_and(|prev| !punctuator(prev) && !punctuator(c)) {
                    out.push(' ');
                }
                gap = false;
                out.push(c);
                if c == '"' {
                    copy_string(&mut chars, &mut out);
                }
            }
        }
    }
    out
}

/// Characters that are a whole token on their own: no space is needed next to them.
fn punctuator(c: char) -> bool {
    matches!(c, '!' | '$' | '&' | '(' | ')' | '[' | ']' | '{' | '}' | ':' | '=' | '@' | '|')
}

/// Copies a string literal verbatim, after its opening quote, up to and including its end.
fn copy_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let block = {
        let mut ahead = chars.clone();
        ahead.next() == Some('"') && ahead.next() == Some('"')
    };
    if block {
        // """…""": only \""" escapes; the string ends at the next """.
        out.push_str("\"\"");
        chars.nth(1);
        while let Some(c) = chars.next() {
            out.push(c);
            let quotes_follow = |n: usize, chars: &std::iter::Peekable<std::str::Chars<'_>>| {
                chars.clone().take(n).filter(|&q| q == '"').count() == n
            };
            if c == '\\' && quotes_follow(3, chars) {
                out.push_str("\"\"\"");
                chars.nth(2);
            } else if c == '"' && quotes_follow(2, chars) {
                out.push_str("\"\"");
                chars.nth(1);
                return;
            }
        }
    } else {
        let mut escaped = false;
        for c in chars.by_ref() {
            out.push(c);
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return,
                _ => escaped = false,
            }
        }
    }
}

fn only_public_roots(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    op.node.ty == OperationType::Query
        && op.node.selection_set.node.items.iter().all(|item| match &item.node {
            Selection::Field(f) => PUBLIC_ROOTS.contains(&f.node.name.node.as_str()),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str) -> Option<()> {
        let doc = async_graphql::parser::parse_query(q).ok()?;
        CatalogCache::cacheable(&doc, None).then_some(())
    }

    #[test]
    fn only_public_catalog_queries_are_cacheable() {
        assert!(key("{ categories { slug services { slug } } }").is_some());
        assert!(key("query Q { services(first: 5) { totalCount } plan(id: \"1\") { id } }").is_some());
        assert!(key("{ categories { slug } me { id } }").is_none());
        assert!(key("{ wallet { balance } }").is_none());
        assert!(key("mutation { logoutAll }").is_none());
        assert!(key("{ ...F } fragment F on QueryRoot { categories { slug } }").is_none());
        assert!(key("not graphql").is_none());
    }

    #[test]
    fn normalising_drops_what_graphql_ignores_and_keeps_strings() {
        let plain = normalise("{ service(slug: \"a b\") { plans { id } } }");
        assert_eq!(plain, "{service(slug:\"a b\"){plans{id}}}");
        let padded = "# a comment\n{\n  service( slug : \"a b\" ) ,{ plans # another\n { id } } }  \t\r\n# end";
        assert_eq!(normalise(padded), plain);
        // Whitespace inside strings and block strings is significant; `#` in a string is no comment.
        assert_ne!(normalise("{ s(a: \"a  b\") }"), normalise("{ s(a: \"a b\") }"));
        assert_eq!(normalise("{ s(a: \"# x\") }"), "{s(a:\"# x\")}");
        assert_eq!(normalise("{ s(a: \"\\\"  # \") }"), "{s(a:\"\\\"  # \")}");
        let block = "{ s(a: \"\"\" x \\\"\"\" # y \"\"\") b }";
        assert_eq!(normalise(block), "{s(a:\"\"\" x \\\"\"\" # y \"\"\")b}");
        // Adjacent names, numbers and strings keep one separating space.
        assert_eq!(normalise("query   Q ( $a : Int = 1 ) { a ... on T { b } }"), "query Q($a:Int=1){a ... on T{b}}");
        assert_eq!(normalise("{ s(a: [\"\"  \"x\"]) }"), "{s(a:[\"\" \"x\"])}");
        assert_ne!(normalise("{ ab }"), normalise("{ a b }"));
    }

    fn body(len: usize) -> Arc<Stored> {
        let template = Template::parse(Bytes::from(vec![b'x'; len]), &QuotaHoles::random());
        Arc::new(Stored { template, rendered: Mutex::new(None) })
    }

    fn text(stored: &Stored) -> Bytes {
        stored.template.render(&Default::default()).unwrap_or_default()
    }

    fn k(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    #[test]
    fn keys_ignore_padding_but_not_operation_variables_or_viewer() {
        let req = |q: &str| async_graphql::Request::new(q);
        let base = CatalogCache::key(false, &req("{ categories { slug } }"));
        let padding = format!("# {}\n{{ categories {{ slug }} }}", "x".repeat(1 << 20));
        assert_eq!(CatalogCache::key(false, &req(&padding)), base);
        assert_ne!(CatalogCache::key(true, &req("{ categories { slug } }")), base);
        assert_ne!(CatalogCache::key(false, &req("{ categories { slug } }").operation_name("Q")), base);
        let vars = async_graphql::Variables::from_json(serde_json::json!({ "a": 1 }));
        assert_ne!(CatalogCache::key(false, &req("{ categories { slug } }").variables(vars)), base);
    }

    #[test]
    fn bytes_are_bounded_and_the_least_recently_used_goes_first() {
        let cache = CatalogCache::new(3 * cost(&body(100)), false);
        for n in 1..=3 {
            cache.store(k(n), 0, body(100));
        }
        assert_eq!(cache.stats().bytes, 3 * cost(&body(100)));
        // Touch 1: 2 is now the least recently used and makes room for 4.
        assert!(cache.get(&k(1), 0).is_some());
        cache.store(k(4), 0, body(100));
        assert!(cache.get(&k(2), 0).is_none());
        assert!(cache.get(&k(1), 0).is_some() && cache.get(&k(3), 0).is_some() && cache.get(&k(4), 0).is_some());
        // A bigger answer evicts as many as it needs; one bigger than the cache is not stored.
        cache.store(k(5), 0, body(150));
        assert_eq!(cache.stats().entries, 2);
        assert!(cache.stats().bytes <= 3 * cost(&body(100)));
        cache.store(k(6), 0, body(1000));
        assert!(cache.get(&k(6), 0).is_none());
        // Replacing an entry does not count it twice.
        cache.store(k(5), 0, body(150));
        assert_eq!(cache.stats().bytes, cost(&body(150)) + cost(&body(100)));
        // A newer version drops the old entries (and their bytes); an older answer is not stored.
        assert!(cache.get(&k(5), 1).is_none());
        assert_eq!(cache.stats(), CacheStats { entries: 0, bytes: 0, ..cache.stats() });
        cache.store(k(7), 0, body(10));
        assert!(cache.get(&k(7), 1).is_none());
    }

    #[tokio::test]
    async fn concurrent_misses_wait_for_one_leader() {
        let cache = CatalogCache::new(1 << 20, false);
        let Fill::Lead(leader) = cache.fill(k(1), 0) else { panic!("the first miss leads") };
        let waiters: Vec<_> = (0..8)
            .map(|_| match cache.fill(k(1), 0) {
                Fill::Wait(w) => w.answer(),
                _ => panic!("later misses wait"),
            })
            .collect();
        assert_eq!(cache.stats().waiting, 8);
        // Another key is not held up.
        assert!(matches!(cache.fill(k(2), 0), Fill::Lead(_)));
        leader.finish(text(&body(5)));
        for answer in futures::future::join_all(waiters).await {
            assert_eq!(answer.map(|a| text(&a)), Some(text(&body(5))));
        }
        assert_eq!(cache.stats().waiting, 0);
        assert!(matches!(cache.fill(k(1), 0), Fill::Hit(b) if text(&b) == text(&body(5))));
        // After a change the same key is filled again.
        assert!(matches!(cache.fill(k(1), 1), Fill::Lead(_)));
        // A leader that gives up releases its waiters to execute on their own.
        let Fill::Lead(leader) = cache.fill(k(3), 0) else { panic!("leads") };
        let Fill::Wait(waiter) = cache.fill(k(3), 0) else { panic!("waits") };
        drop(leader);
        assert!(waiter.answer().await.is_none());
        assert!(matches!(cache.fill(k(3), 0), Fill::Lead(_)));
    }
}
