//! Start-up as an operator meets it: the real `minispod` binary, a clean environment (no
//! `RUST_LOG`, no `.env`), its exit code and what it prints.
use std::{
    io::{BufRead, BufReader},
    process::{Child, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Statement};

use crate::support::TestDb;

/// The binary with nothing but `env`, from a directory without a `.env`.
fn minispod(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_minispod"));
    cmd.args(args).current_dir(std::env::temp_dir()).env_clear();
    // No cluster discovery, no background jobs: start-up only.
    cmd.envs([
        ("MINISPOD_KUBE", "off"),
        ("MINISPOD_PAYMENT_RECONCILE_SECS", "0"),
        ("MINISPOD_BILLING_INTERVAL_SECS", "0"),
        ("MINISPOD_RECONCILE_INTERVAL_SECS", "0"),
    ]);
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs to completion; a process that outlives `deadline` fails the test instead of hanging it.
fn run(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> (Output, Duration) {
    let mut child = minispod(args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("minispod {args:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A gateway being served: its stdout lines arrive on a channel; killed on drop.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Served {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut child = minispod(&["serve"], env).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Everything printed until the "GraphQL:" line of the start banner.
    fn until_serving(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                    if line.trim_start().starts_with("GraphQL:") {
                        return out;
                    }
                }
                Err(_) => panic!("the gateway did not start; it printed:\n{out}"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (bound, read, released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn has_table(db: &TestDb, table: &str) -> bool {
    let conn = sea_orm::Database::connect(db.url.as_str()).await.unwrap();
    let backend = conn.get_database_backend();
    let sql = if db.is_postgres() {
        format!("SELECT 1 FROM information_schema.tables WHERE table_name = '{table}'")
    } else {
        format!("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
    };
    let found = conn.query_one_raw(Statement::from_string(backend, sql)).await.unwrap().is_some();
    conn.close().await.ok();
    found
}

#[test]
fn an_unreachable_postgres_fails_within_the_timeout_in_one_line() {
    let port = closed_port();
    let url = format!("postgres://minispod:hunter2-secret@127.0.0.1:{port}/minispod");
    let env = [("DATABASE_URL", url.as_str()), ("MINISPOD_DB_CONNECT_TIMEOUT_SECS", "2")];
    let (out, took) = run(&["serve"], &env, Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    let (stderr, stdout) = (text(&out.stderr), text(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    assert!(
        stderr.contains("cannot connect to the database") && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("MINISPOD_DB_CONNECT_TIMEOUT_SECS") && stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "no password in messages");
    assert!(!stdout.contains("cannot connect"), "said once, not again in the log:\n{stdout}");
    // Retried until the timeout (a server still starting gets its chance), and not longer.
    assert!(took >= Duration::from_millis(1_900) && took < Duration::from_secs(6), "took {took:?}");

    // `migrate` meets the same timeout and says the same.
    let (out, took) = run(&["migrate", "status"], &env, Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr).lines().count(), 1, "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[tokio::test]
async fn a_taken_port_fails_before_the_database_is_touched() {
    let db = TestDb::create().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let env = [("DATABASE_URL", db.url.as_str()), ("MINISPOD_LISTEN", addr.as_str())];
    let (out, _) = run(&["serve"], &env, Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("MINISPOD_LISTEN"), "{stderr}");
    if db.is_postgres() {
        assert!(!has_table(&db, "seaql_migrations").await, "not migrated");
    } else {
        let path = db.url.trim_start_matches("sqlite://").split('?').next().unwrap();
        assert!(!std::path::Path::new(path).exists(), "the SQLite file was not even created");
    }
    drop(taken);
}

#[tokio::test]
async fn migrate_status_prints_applied_and_pending_without_rust_log() {
    use migration::MigratorTrait;
    let total = migration::Migrator::migrations().len();
    let db = TestDb::create().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let status = || {
        let (out, _) = run(&["migrate", "status"], &env, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let before = status();
    assert_eq!(before.lines().filter(|l| l.starts_with("pending  m")).count(), total, "{before}");
    assert!(before.ends_with(&format!("{total} migrations: 0 applied, {total} pending\n")), "{before}");
    assert!(!has_table(&db, "seaql_migrations").await, "status only reads");

    // A gateway told to leave the schema to the migration Job refuses a schema that is behind.
    let refuse =
        [("DATABASE_URL", db.url.as_str()), ("MINISPOD_MIGRATE_ON_START", "false"), ("MINISPOD_LISTEN", "127.0.0.1:0")];
    let (out, _) = run(&["serve"], &refuse, Duration::from_secs(60));
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{total} pending migration(s)")) && stderr.contains("minispod migrate up"),
        "{stderr}"
    );

    let (out, _) = run(&["migrate", "up"], &env, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("applied {total} migration(s): m")), "{}", text(&out.stdout));

    let after = status();
    assert_eq!(after.lines().filter(|l| l.starts_with("applied  m")).count(), total, "{after}");
    assert!(after.ends_with(&format!("{total} migrations: {total} applied, 0 pending\n")), "{after}");

    let (out, _) = run(&["migrate", "up"], &env, Duration::from_secs(60));
    assert_eq!(text(&out.stdout), "the database is up to date\n");
}

#[tokio::test]
async fn the_first_start_in_development_prints_the_demo_accounts() {
    #[derive(serde::Deserialize)]
    struct Users {
        users: Vec<User>,
    }
    #[derive(serde::Deserialize)]
    struct User {
        email: String,
        password: String,
    }
    let seed: Users = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seed/users.json")).unwrap(),
    )
    .unwrap();
    assert!(!seed.users.is_empty());
    let db = TestDb::create().await;
    let env = [("DATABASE_URL", db.url.as_str()), ("MINISPOD_LISTEN", "127.0.0.1:0")];

    let first = Served::start(&env);
    let printed = first.until_serving();
    assert!(printed.contains("Demo accounts"), "{printed}");
    for u in &seed.users {
        let line =
            printed.lines().find(|l| l.contains(&u.email)).unwrap_or_else(|| panic!("{} missing:\n{printed}", u.email));
        assert!(line.contains(&u.password), "{line}");
    }
    assert!(printed.contains("Generated password (shown once)"), "and the administrator's:\n{printed}");
    drop(first);

    // Not on the next start: the accounts exist and are not seeded again.
    let second = Served::start(&env);
    let printed = second.until_serving();
    assert!(!printed.contains("Demo accounts") && !printed.contains("Generated password"), "{printed}");
}

mod needs_postgres {
    use super::*;

    /// Replicas and the migration Job take turns on the start-up lock: while it is held, a
    /// starting gateway waits instead of migrating alongside.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (advisory locks); .ci/run runs it on PostgreSQL"]
    async fn a_starting_gateway_waits_for_the_start_up_lock() {
        let db = TestDb::create().await;
        assert!(db.is_postgres(), "needs PostgreSQL (TEST_DATABASE_URL)");
        let holder = minispod_gateway::db::Db::connect(&db.url).await.unwrap();
        let lock = holder.startup_lock().await.unwrap();

        let env =
            [("DATABASE_URL", db.url.as_str()), ("MINISPOD_LISTEN", "127.0.0.1:0"), ("MINISPOD_SEED_DEMO", "false")];
        let served = Served::start(&env);
        // The gateway is queued on the lock: PostgreSQL shows its ungranted advisory lock request.
        // The key 0x6d69_6e69_7370_0002 is classid 0x6d696e69, objid 0x73700002.
        let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
            AND classid = 1835626089 AND objid = 1936719874 \
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let row = holder
                .conn
                .query_one_raw(Statement::from_string(sea_orm::DatabaseBackend::Postgres, waiting))
                .await
                .unwrap()
                .unwrap();
            if row.try_get_by_index::<i64>(0).unwrap() > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway never asked for the start-up lock");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!has_table(&db, "seaql_migrations").await, "nothing migrated while the lock is held");

        lock.release().await.unwrap();
        let printed = tokio::task::spawn_blocking(move || {
            let out = served.until_serving();
            drop(served);
            out
        })
        .await
        .unwrap();
        assert!(printed.contains("MinisPod Gateway is running"), "{printed}");
        assert!(has_table(&db, "seaql_migrations").await);
    }
}
