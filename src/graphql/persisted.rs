//! Persisted queries: Apollo's automatic persisted queries (APQ) and a persisted-only mode.
//!
//! A request names its document by `extensions.persistedQuery {version: 1, sha256Hash}`:
//! - `apq`: a hash alone runs the registered document, or answers PERSISTED_QUERY_NOT_FOUND
//!   (the client then resends hash + document); hash + document registers it once the hash
//!   matches and the document passed the same checks as any other (`register` is called after
//!   them). The store is a bounded LRU (entries and bytes), per replica.
//! - `only`: only the operations of the manifest (Apollo's persisted query manifest, loaded at
//!   start-up) run, by id; a request without an id gets PERSISTED_QUERY_ID_REQUIRED, an unknown
//!   id PERSISTED_QUERY_NOT_IN_LIST. Administrators may still send documents (GraphiQL, scripts).
//! - `off`: a hash alone answers PERSISTED_QUERY_NOT_SUPPORTED, which makes Apollo's link stop
//!   hashing; documents run as usual.
//!
//! Resolution only fills in the request's text: the caller then runs the nesting, alias and
//! expansion limits, the answer cache and execution on it exactly as for a sent document.
use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use anyhow::Context as _;
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::{
    config::{PersistedMode, PersistedQueriesConfig},
    error::AppError,
};

pub struct PersistedQueries {
    mode: PersistedMode,
    /// Operations of the manifest by id; never evicted.
    manifest: HashMap<String, Arc<str>>,
    store: Mutex<Store>,
    max_entries: usize,
    max_bytes: usize,
}

struct Store {
    lru: LruCache<String, Arc<str>>,
    bytes: usize,
}

/// A request's persisted-query extension, when it has one.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extension {
    version: i64,
    sha256_hash: String,
}

/// What to do after the request's document passed its checks.
#[must_use]
pub enum Resolved {
    /// Nothing to remember.
    Done,
    /// Register the document under this hash once it passed the checks.
    Register(String),
}

const NOT_FOUND: AppError =
    AppError::PersistedQuery { code: "PERSISTED_QUERY_NOT_FOUND", message: "PersistedQueryNotFound" };
const NOT_SUPPORTED: AppError =
    AppError::PersistedQuery { code: "PERSISTED_QUERY_NOT_SUPPORTED", message: "PersistedQueryNotSupported" };
const NOT_IN_LIST: AppError = AppError::PersistedQuery {
    code: "PERSISTED_QUERY_NOT_IN_LIST",
    message: "this operation is not in the persisted query list",
};
const ID_REQUIRED: AppError = AppError::PersistedQuery {
    code: "PERSISTED_QUERY_ID_REQUIRED",
    message: "only persisted operations run here: send extensions.persistedQuery.sha256Hash",
};

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl PersistedQueries {
    /// Builds the store and loads the manifest, if one is configured.
    pub fn load(config: &PersistedQueriesConfig) -> anyhow::Result<Self> {
        let manifest = match &config.manifest {
            Some(path) => load_manifest(path)
                .with_context(|| format!("MINISPOD_PERSISTED_QUERIES_MANIFEST: cannot load {}", path.display()))?,
            None => HashMap::new(),
        };
        Ok(Self::new(config, manifest))
    }

    fn new(config: &PersistedQueriesConfig, manifest: HashMap<String, Arc<str>>) -> Self {
        Self {
            mode: config.mode,
            manifest,
            store: Mutex::new(Store { lru: LruCache::unbounded(), bytes: 0 }),
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
        }
    }

    /// Fills in the request's document from its hash (or refuses it); `admin` may send
    /// documents in `only` mode.
    pub fn resolve(&self, req: &mut async_graphql::Request, admin: bool) -> Result<Resolved, AppError> {
        let Some(value) = req.extensions.get("persistedQuery") else {
            return match self.mode {
                PersistedMode::Only if !admin => Err(ID_REQUIRED),
                _ => Ok(Resolved::Done),
            };
        };
        if self.mode == PersistedMode::Off {
            return if req.query.is_empty() { Err(NOT_SUPPORTED) } else { Ok(Resolved::Done) };
        }
        let ext: Extension = value
            .clone()
            .into_json()
            .ok()
            .and_then(|json| serde_json::from_value(json).ok())
            .ok_or_else(|| AppError::bad_input("persistedQuery", "persistedQuery needs version and sha256Hash"))?;
        if ext.version != 1 {
            return Err(AppError::bad_input("persistedQuery", "only persistedQuery version 1 is supported"));
        }
        if self.mode == PersistedMode::Only {
            return match self.manifest.get(&ext.sha256_hash) {
                // The manifest's text runs, never the client's.
                Some(text) => {
                    req.query = text.to_string();
                    Ok(Resolved::Done)
                }
                None if admin && !req.query.is_empty() => Ok(Resolved::Done),
                None => Err(NOT_IN_LIST),
            };
        }
        let hash = ext.sha256_hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::bad_input("persistedQuery", "sha256Hash must be 64 hexadecimal digits"));
        }
        if !req.query.is_empty() {
            if sha256_hex(&req.query) != hash {
                return Err(AppError::bad_input(
                    "persistedQuery",
                    "provided sha256Hash does not match the query (PERSISTED_QUERY_HASH_MISMATCH)",
                ));
            }
            return Ok(match self.lookup(&hash) {
                Some(_) => Resolved::Done,
                None => Resolved::Register(hash),
            });
        }
        let text = self.lookup(&hash).ok_or(NOT_FOUND)?;
        req.query = text.to_string();
        Ok(Resolved::Done)
    }

    fn lookup(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(text) = self.manifest.get(hash) {
            return Some(text.clone());
        }
        self.store().lru.get(hash).cloned()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a document that passed every check; evicts the least recently used beyond
    /// the bounds. A document larger than the whole budget is not kept.
    pub fn register(&self, hash: String, query: &str) {
        let size = hash.len() + query.len();
        if size > self.max_bytes {
            return;
        }
        let mut store = self.store();
        if let Some(old) = store.lru.put(hash.clone(), Arc::from(query)) {
            store.bytes -= hash.len() + old.len();
        }
        store.bytes += size;
        while store.bytes > self.max_bytes || store.lru.len() > self.max_entries {
            match store.lru.pop_lru() {
                Some((k, v)) => store.bytes -= k.len() + v.len(),
                None => break,
            }
        }
    }

    /// Registered documents and their bytes (hash + text), for /metrics.
    pub fn stats(&self) -> (usize, usize) {
        let store = self.store();
        (store.lru.len(), store.bytes)
    }
}

/// Apollo's manifest (`@apollo/generate-persisted-query-manifest`):
/// `{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body", ...}]}`.
fn load_manifest(path: &Path) -> anyhow::Result<HashMap<String, Arc<str>>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        format: String,
        version: u32,
        operations: Vec<Operation>,
    }
    #[derive(serde::Deserialize)]
    struct Operation {
        id: String,
        body: String,
    }
    let text = std::fs::read_to_string(path)?;
    let manifest: Manifest = serde_json::from_str(&text).context("not a persisted query manifest")?;
    if manifest.format != "apollo-persisted-query-manifest" || manifest.version != 1 {
        anyhow::bail!("expected format \"apollo-persisted-query-manifest\", version 1");
    }
    let mut operations = HashMap::new();
    for op in manifest.operations {
        async_graphql::parser::parse_query(&op.body).with_context(|| format!("operation {}", op.id))?;
        if operations.insert(op.id.clone(), Arc::from(op.body)).is_some() {
            anyhow::bail!("operation id {} appears twice", op.id);
        }
    }
    Ok(operations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(mode: PersistedMode, max_entries: usize, max_bytes: usize) -> PersistedQueriesConfig {
        PersistedQueriesConfig { mode, max_entries, max_bytes, manifest: None }
    }

    fn request(query: &str, hash: Option<&str>) -> async_graphql::Request {
        let mut req = async_graphql::Request::new(query);
        if let Some(h) = hash {
            let ext = json!({ "version": 1, "sha256Hash": h });
            req.extensions.insert("persistedQuery".into(), async_graphql::Value::from_json(ext).unwrap());
        }
        req
    }

    fn code(r: Result<Resolved, AppError>) -> &'static str {
        match r {
            Err(e) => e.code(),
            Ok(_) => "OK",
        }
    }

    #[test]
    fn apq_round_trip_and_mismatch() {
        let pq = PersistedQueries::new(&config(PersistedMode::Apq, 10, 1 << 20), HashMap::new());
        let q = "{ __typename }";
        let h = sha256_hex(q);
        assert_eq!(code(pq.resolve(&mut request("", Some(&h)), false)), "PERSISTED_QUERY_NOT_FOUND");
        let mut wrong = request("{ me { id } }", Some(&h));
        assert_eq!(code(pq.resolve(&mut wrong, false)), "BAD_USER_INPUT");
        match pq.resolve(&mut request(q, Some(&h)), false) {
            Ok(Resolved::Register(hash)) => pq.register(hash, q),
            _ => panic!("registers"),
        }
        let mut again = request("", Some(&h.to_uppercase()));
        assert!(matches!(pq.resolve(&mut again, false), Ok(Resolved::Done)));
        assert_eq!(again.query, q);
        assert_eq!(code(pq.resolve(&mut request("", Some("abc")), false)), "BAD_USER_INPUT");
        // Plain documents still run.
        assert!(matches!(pq.resolve(&mut request(q, None), false), Ok(Resolved::Done)));
    }

    #[test]
    fn the_store_is_bounded_by_entries_and_bytes() {
        let pq = PersistedQueries::new(&config(PersistedMode::Apq, 3, 64 * 4), HashMap::new());
        let docs: Vec<String> = (0..5).map(|i| format!("{{ a{i}: __typename }}")).collect();
        for d in &docs {
            pq.register(sha256_hex(d), d);
        }
        assert_eq!(pq.stats().0, 3);
        assert!(pq.lookup(&sha256_hex(&docs[0])).is_none(), "least recently used evicted");
        assert!(pq.lookup(&sha256_hex(&docs[4])).is_some());
        // Bytes: each entry is 64 + ~20 bytes; a budget of 256 keeps two.
        let pq = PersistedQueries::new(&config(PersistedMode::Apq, 100, 200), HashMap::new());
        for d in &docs {
            pq.register(sha256_hex(d), d);
        }
        let (entries, bytes) = pq.stats();
        assert!(entries == 2 && bytes <= 200, "{entries} entries, {bytes} bytes");
        pq.register(sha256_hex("x"), &"x".repeat(500));
        assert!(pq.stats().1 <= 200);
    }

    #[test]
    fn only_mode_runs_the_manifest_and_off_mode_declines_hashes() {
        let manifest = HashMap::from([("op-1".to_string(), Arc::from("{ __typename }"))]);
        let pq = PersistedQueries::new(&config(PersistedMode::Only, 10, 1 << 20), manifest);
        let mut req = request("{ me { id } }", Some("op-1"));
        assert!(matches!(pq.resolve(&mut req, false), Ok(Resolved::Done)));
        assert_eq!(req.query, "{ __typename }", "the manifest's text, not the client's");
        assert_eq!(code(pq.resolve(&mut request("{ __typename }", None), false)), "PERSISTED_QUERY_ID_REQUIRED");
        assert_eq!(code(pq.resolve(&mut request("", Some("op-2")), false)), "PERSISTED_QUERY_NOT_IN_LIST");
        assert_eq!(code(pq.resolve(&mut request("{ __typename }", None), true)), "OK", "administrators");

        let off = PersistedQueries::new(&config(PersistedMode::Off, 10, 1 << 20), HashMap::new());
        let h = sha256_hex("{ __typename }");
        assert_eq!(code(off.resolve(&mut request("", Some(&h)), false)), "PERSISTED_QUERY_NOT_SUPPORTED");
        assert_eq!(code(off.resolve(&mut request("{ __typename }", Some(&h)), false)), "OK");
    }
}
