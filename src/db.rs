//! Database connection, migrations and write transactions that behave the same on SQLite and
//! PostgreSQL.
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The shared database handle. On SQLite, write transactions are serialised in-process: SQLite
/// allows one writer anyway, and a deferred transaction that upgrades to a writer while another
/// commits fails with SQLITE_BUSY instead of waiting. Readers still run in parallel (WAL).
#[derive(Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
    write_lock: Option<Arc<Mutex<()>>>,
    /// SQL statements executed so far (exported as a metric; tests use it to catch N+1).
    statements: Arc<AtomicU64>,
    /// Tasks queued for the SQLite writer lock (tests use it to prove that requests overlapped).
    writers_waiting: Arc<AtomicUsize>,
}

/// A write transaction; on SQLite it also holds the writer lock until commit or drop.
pub struct Tx {
    txn: DatabaseTransaction,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Tx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

impl Db {
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.sqlx_logging(false).connect_timeout(Duration::from_secs(10)).acquire_timeout(Duration::from_secs(30));
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            opts.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            });
        } else {
            opts.max_connections(32).min_connections(1);
        }
        let conn = Database::connect(opts).await?;
        Ok(Self::from_connection(conn))
    }

    pub fn from_connection(mut conn: DatabaseConnection) -> Self {
        let sqlite = conn.get_database_backend() == DatabaseBackend::Sqlite;
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        conn.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Self { conn, write_lock: sqlite.then(|| Arc::new(Mutex::new(()))), statements, writers_waiting: Arc::default() }
    }

    pub fn statement_count(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// How many transactions are waiting for the SQLite writer right now (always 0 on PostgreSQL).
    pub fn writers_waiting(&self) -> usize {
        self.writers_waiting.load(Ordering::Relaxed)
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        let _guard = self.lock_writer().await;
        Migrator::up(&self.conn, None).await
    }

    /// Begins a transaction that may write. Use it for every use case that changes state.
    pub async fn begin(&self) -> Result<Tx, DbErr> {
        let guard = self.lock_writer().await;
        let txn = if guard.is_some() {
            // IMMEDIATE takes SQLite's write lock at BEGIN (waiting up to busy_timeout). A dropped,
            // uncommitted transaction releases our in-process lock at once but its ROLLBACK runs a
            // moment later on its connection; a DEFERRED transaction starting in that window
            // would read first and then fail with SQLITE_BUSY when it upgrades to write.
            let opts = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            };
            self.conn.begin_with_options(opts).await?
        } else {
            self.conn.begin().await?
        };
        Ok(Tx { txn, _guard: guard })
    }

    async fn lock_writer(&self) -> Option<OwnedMutexGuard<()>> {
        let lock = self.write_lock.as_ref()?;
        let _queued = Queued::enter(&self.writers_waiting);
        Some(lock.clone().lock_owned().await)
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }
}

/// Counts a waiter for as long as it waits, also when its future is dropped while waiting.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// PostgreSQL LISTEN on `channel`, calling `on_payload` for every notification until aborted.
/// Listening starts before this returns, so nothing notified afterwards is missed.
pub async fn listen(
    db: &Db,
    channel: &'static str,
    on_payload: impl Fn(&str) + Send + 'static,
) -> anyhow::Result<tokio::task::AbortHandle> {
    let pool = db.conn.get_postgres_connection_pool().clone();
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    let task = tokio::spawn(async move {
        loop {
            // `recv` reconnects by itself after a lost connection.
            match listener.recv().await {
                Ok(n) => on_payload(n.payload()),
                Err(e) => {
                    tracing::warn!(error = %e, channel, "LISTEN connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(task.abort_handle())
}
