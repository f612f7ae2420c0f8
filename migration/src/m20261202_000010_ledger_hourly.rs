//! `ledger_hourly`: COMPLETED ledger amounts summed per UTC hour of `completed_at`, kind and
//! service, kept by triggers in the same transaction as the ledger row that changes them.
//!
//! `revenue` over 90 days reads ~250,000 ledger rows of a 1,000,000-row ledger; the same range
//! here is ~2,000 hours × a few kinds × services. The triggers (rather than the use cases) keep
//! it, so no code path that writes the ledger can forget it, and it changes only inside the
//! ledger row's own transaction. Hours, not days: a day starts at another UTC hour in each time
//! zone, and zones with half-hour offsets read their partial hours from the ledger itself.
//! `hour` is whole hours since the Unix epoch on both databases (SQLite stores RFC 3339 text);
//! `service_id` is 0 for rows without a subscription (top-ups, reversals).
use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Adds the row `r` (NEW or OLD), times `sign`, to its hour's sum when `when` holds. (SQLite
/// triggers have no IF, so each statement carries its condition; an upsert from a SELECT needs
/// a WHERE there anyway.)
fn upsert(backend: DatabaseBackend, r: &str, sign: &str, when: &str) -> String {
    format!(
        "INSERT INTO ledger_hourly (hour, type, service_id, amount) SELECT {hour}, {r}.type, \
         COALESCE((SELECT s.service_id FROM subscriptions s WHERE s.id = {r}.subscription_id), 0), {sign}{r}.amount \
         WHERE {when} ON CONFLICT (hour, type, service_id) DO UPDATE SET amount = ledger_hourly.amount + excluded.amount;",
        hour = hour(backend, &format!("{r}.completed_at")),
    )
}

/// Whole hours since the Unix epoch of the instant `col`.
fn hour(backend: DatabaseBackend, col: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("floor(extract(epoch FROM {col}) / 3600)::bigint"),
        _ => format!("CAST(strftime('%s', {col}) AS INTEGER) / 3600"),
    }
}

fn counted(r: &str) -> String {
    format!("{r}.status = 'COMPLETED' AND {r}.completed_at IS NOT NULL")
}

/// An update moves the sums only when a summed column changed (SeaORM's whole-row updates
/// rewrite unchanged columns, which must not lock the hour's row).
fn changed(distinct: &str) -> String {
    ["status", "type", "amount", "completed_at", "subscription_id"]
        .map(|c| format!("OLD.{c} {distinct} NEW.{c}"))
        .join(" OR ")
}

fn backfill(backend: DatabaseBackend) -> String {
    format!(
        "INSERT INTO ledger_hourly (hour, type, service_id, amount) \
         SELECT h.hour, h.type, h.service_id, SUM(h.amount) FROM (SELECT {hour} AS hour, t.type AS type, \
           COALESCE(s.service_id, 0) AS service_id, t.amount AS amount FROM transactions t \
           LEFT JOIN subscriptions s ON s.id = t.subscription_id WHERE {counted}) h \
         GROUP BY h.hour, h.type, h.service_id",
        hour = hour(backend, "t.completed_at"),
        counted = counted("t"),
    )
}

fn postgres() -> Vec<String> {
    let b = DatabaseBackend::Postgres;
    let (new, old) = (counted("NEW"), counted("OLD"));
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION ledger_hourly_apply() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF TG_OP <> 'INSERT' THEN {sub} END IF; \
               IF TG_OP <> 'DELETE' THEN {add} END IF; \
               RETURN NULL; \
             END $$",
            sub = upsert(b, "OLD", "-", &old),
            add = upsert(b, "NEW", "", &new),
        ),
        format!(
            "CREATE TRIGGER ledger_hourly_insert AFTER INSERT ON transactions FOR EACH ROW \
             WHEN ({new}) EXECUTE FUNCTION ledger_hourly_apply()"
        ),
        format!(
            "CREATE TRIGGER ledger_hourly_update AFTER UPDATE ON transactions FOR EACH ROW \
             WHEN ({}) EXECUTE FUNCTION ledger_hourly_apply()",
            changed("IS DISTINCT FROM")
        ),
        format!(
            "CREATE TRIGGER ledger_hourly_delete AFTER DELETE ON transactions FOR EACH ROW \
             WHEN ({old}) EXECUTE FUNCTION ledger_hourly_apply()"
        ),
        backfill(b),
    ]
}

fn sqlite() -> Vec<String> {
    let b = DatabaseBackend::Sqlite;
    let (new, old) = (counted("NEW"), counted("OLD"));
    vec![
        format!(
            "CREATE TRIGGER ledger_hourly_insert AFTER INSERT ON transactions WHEN {new} BEGIN {} END",
            upsert(b, "NEW", "", "1")
        ),
        format!(
            "CREATE TRIGGER ledger_hourly_update AFTER UPDATE ON transactions WHEN {} BEGIN {} {} END",
            changed("IS NOT"),
            upsert(b, "OLD", "-", &old),
            upsert(b, "NEW", "", &new),
        ),
        format!(
            "CREATE TRIGGER ledger_hourly_delete AFTER DELETE ON transactions WHEN {old} BEGIN {} END",
            upsert(b, "OLD", "-", "1")
        ),
        backfill(b),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The key leads with the hour, so a range of hours is one range of it; it carries the
        // amount, so sums read it alone (PostgreSQL: INCLUDE; SQLite: the table is its key).
        let table = match manager.get_database_backend() {
            DatabaseBackend::Postgres => "PRIMARY KEY (hour, type, service_id) INCLUDE (amount))",
            _ => "PRIMARY KEY (hour, type, service_id)) WITHOUT ROWID",
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE ledger_hourly (hour BIGINT NOT NULL, type VARCHAR(20) NOT NULL, \
             service_id BIGINT NOT NULL, amount BIGINT NOT NULL, {table}"
        ))
        .await?;
        let statements = match manager.get_database_backend() {
            DatabaseBackend::Postgres => postgres(),
            _ => sqlite(),
        };
        for sql in statements {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DatabaseBackend::Postgres;
        for t in ["insert", "update", "delete"] {
            let on = if postgres { " ON transactions" } else { "" };
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS ledger_hourly_{t}{on}")).await?;
        }
        if postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS ledger_hourly_apply()").await?;
        }
        db.execute_unprepared("DROP TABLE IF EXISTS ledger_hourly").await?;
        Ok(())
    }
}
