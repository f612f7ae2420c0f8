//! Whole-response cache for public catalog queries. The catalog is read far more often than it
//! changes, and one nested catalog answer costs thousands of field resolutions; a cached answer
//! costs a hash lookup.
//!
//! Consistency: every committed catalog or quota change bumps a version before its request
//! answers, so the next request on this replica never sees the old answer. Other replicas hear
//! of the change through PostgreSQL NOTIFY (milliseconds). An answer is stored under the version
//! read *before* it was computed, so an answer that raced a change is never served after it.
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tokio::task::AbortHandle;

use crate::db::{self, Db};

const CHANNEL: &str = "minispod_catalog";
const MAX_ENTRIES: usize = 512;
/// Root fields whose answers depend only on the catalog (and on whether the viewer is an admin).
const PUBLIC_ROOTS: &[&str] = &["categories", "category", "services", "service", "plan", "__typename"];

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    admin: bool,
    operation: Option<String>,
    query: String,
    variables: String,
}

pub struct CatalogCache {
    version: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    entries: RwLock<HashMap<CacheKey, (u64, bytes::Bytes)>>,
    via_postgres: bool,
    /// Sent with our notifications; our own echo is ignored (we bumped when we sent it).
    replica: String,
    listener: Mutex<Option<AbortHandle>>,
}

impl CatalogCache {
    pub async fn start(db: &Db) -> anyhow::Result<Arc<Self>> {
        let cache = Arc::new(Self {
            version: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
            via_postgres: db.backend() == DatabaseBackend::Postgres,
            replica: uuid::Uuid::new_v4().to_string(),
            listener: Mutex::new(None),
        });
        if cache.via_postgres {
            let weak = Arc::downgrade(&cache);
            let handle = db::listen(db, CHANNEL, move |sender| {
                if let Some(c) = weak.upgrade()
                    && sender != c.replica
                {
                    c.bump();
                }
            })
            .await?;
            if let Ok(mut slot) = cache.listener.lock() {
                *slot = Some(handle);
            }
        }
        Ok(cache)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The cache key of a request: its text, variables and whether the viewer is an admin.
    pub fn key(admin: bool, req: &async_graphql::Request) -> CacheKey {
        CacheKey {
            admin,
            operation: req.operation_name.clone(),
            query: req.query.clone(),
            variables: serde_json::to_string(&req.variables).unwrap_or_default(),
        }
    }

    /// Whether the selected operation only reads the public catalog (so its answer may be stored).
    pub fn cacheable(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
        only_public_roots(doc, operation)
    }

    pub fn get(&self, key: &CacheKey, version: u64) -> Option<bytes::Bytes> {
        let entries = self.entries.read().ok()?;
        let hit = entries.get(key).filter(|(v, _)| *v == version).map(|(_, body)| body.clone());
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// (hits, misses, entries) for /metrics.
    pub fn stats(&self) -> (u64, u64, usize) {
        let entries = self.entries.read().map(|e| e.len()).unwrap_or_default();
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed), entries)
    }

    /// Stores the answer of a cacheable request that missed.
    pub fn put(&self, key: CacheKey, version: u64, body: bytes::Bytes) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
                // Simple and bounded: distinct public queries are few; start over when full.
                entries.clear();
            }
            entries.insert(key, (version, body));
        }
    }

    /// Call after committing a change the public catalog shows (including quota).
    pub async fn changed(&self, db: &Db) {
        self.bump();
        if self.via_postgres {
            let stmt =
                Statement::from_sql_and_values(DatabaseBackend::Postgres, "SELECT pg_notify($1, '')", [CHANNEL.into()]);
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
}
