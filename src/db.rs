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

/// How long `Db::connect` waits for the database (`Config::db_connect_timeout` overrides it).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Advisory lock key of start-up work (migrations, first-start seeding): "minispod startup".
const STARTUP_LOCK_KEY: i64 = 0x6d69_6e69_7370_0002;

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_within(url, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// Connects, or fails within `timeout` with one line that names the database (without its
    /// password) and the last reason. A PostgreSQL server that refuses connections (not up yet,
    /// restarting) is retried until then; a refusal by the server itself (password, unknown
    /// database) fails at once.
    pub async fn connect_within(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + timeout;
        let fail = |reason: String| {
            anyhow::anyhow!(
                "cannot connect to the database at {} within {} s (MINISPOD_DB_CONNECT_TIMEOUT_SECS): {reason}",
                redact_url(url),
                timeout.as_secs()
            )
        };
        let sqlite = url.starts_with("sqlite:");
        if !sqlite {
            wait_for_postgres(url, deadline).await.map_err(fail)?;
        }
        let mut opts = ConnectOptions::new(url.to_string());
        // A ping on every checkout would add a round trip to every statement; only connections
        // idle long enough to have been dropped by the server or a proxy are pinged.
        opts.sqlx_logging(false)
            .connect_timeout(timeout)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
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
        let conn = match tokio::time::timeout_at(deadline, Database::connect(opts)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(fail(one_line(&e))),
            Err(_) => return Err(fail("no connection in time".into())),
        };
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

    /// Serialises start-up work across every process on this database: on PostgreSQL a session
    /// advisory lock, held on a connection of its own until `release` (replicas starting
    /// together and the migration Job take turns); on SQLite (one process) nothing.
    pub async fn startup_lock(&self) -> anyhow::Result<StartupLock> {
        if self.backend() != DatabaseBackend::Postgres {
            return Ok(StartupLock(None));
        }
        let mut conn = self.conn.get_postgres_connection_pool().acquire().await?;
        // Dropped before release (an error, a cancelled start): the connection is closed, which
        // ends the session and with it the lock, instead of returning to the pool locked.
        conn.close_on_drop();
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)").bind(STARTUP_LOCK_KEY).execute(&mut *conn).await?;
        Ok(StartupLock(Some(conn)))
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

/// Held start-up lock; see `Db::startup_lock`.
pub struct StartupLock(Option<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>>);

impl StartupLock {
    pub async fn release(mut self) -> anyhow::Result<()> {
        if let Some(mut conn) = self.0.take() {
            sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)").bind(STARTUP_LOCK_KEY).execute(&mut *conn).await?;
            // Unlocked: the connection may go back to the pool.
            conn.close().await?;
        }
        Ok(())
    }
}

/// `postgres://user:password@host/db` without the password (for messages).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tries single connections until one succeeds or `deadline`; the error is the last reason.
async fn wait_for_postgres(url: &str, deadline: tokio::time::Instant) -> Result<(), String> {
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _, postgres::PgConnectOptions};
    let opts: PgConnectOptions = url.parse().map_err(|e| format!("invalid DATABASE_URL: {}", one_line(&e)))?;
    let mut last = "no answer".to_string();
    loop {
        match tokio::time::timeout_at(deadline, opts.connect()).await {
            Err(_) => return Err(last),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) => {
                // Not listening (yet), unreachable, TLS, or "the database system is starting up".
                let transient = matches!(e, sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::Tls(_))
                    || e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "57P03");
                last = one_line(&e);
                if !transient {
                    return Err(last);
                }
            }
        }
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(200))).await.is_err() {
            return Err(last);
        }
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_in_messages_carry_no_password() {
        assert_eq!(
            redact_url("postgres://minispod:s3cret@db:5432/minispod?sslmode=require"),
            "postgres://minispod@db:5432/minispod"
        );
        assert_eq!(redact_url("postgresql://u:p%40ss@10.0.0.1/x"), "postgresql://u@10.0.0.1/x");
        assert_eq!(redact_url("postgres://db:5432/minispod"), "postgres://db:5432/minispod");
        assert_eq!(redact_url("sqlite://minispod.db?mode=rwc"), "sqlite://minispod.db?mode=rwc");
    }
}
