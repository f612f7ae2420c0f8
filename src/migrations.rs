//! `minispod migrate …`: the schema migrations run by hand or by a Job, with their outcome
//! printed (sea-orm-migration only logs through tracing, which operators often filter out).
use migration::{MigrationStatus, Migrator, MigratorTrait};

use crate::db::Db;

/// Every migration the binary knows, in order, with whether the database has applied it. Reads
/// only: a missing migration table means everything is pending.
pub async fn status(db: &Db) -> anyhow::Result<Vec<(String, bool)>> {
    let all = Migrator::get_migration_with_status_read_only(&db.conn).await?;
    Ok(all.iter().map(|m| (m.name().to_string(), m.status() == MigrationStatus::Applied)).collect())
}

pub async fn pending(db: &Db) -> anyhow::Result<Vec<String>> {
    Ok(status(db).await?.into_iter().filter(|(_, applied)| !applied).map(|(name, _)| name).collect())
}

/// The status as `minispod migrate status` prints it: one line per migration, then a summary.
pub fn render_status(status: &[(String, bool)]) -> String {
    let mut out = String::new();
    for (name, applied) in status {
        out.push_str(if *applied { "applied  " } else { "pending  " });
        out.push_str(name);
        out.push('\n');
    }
    let applied = status.iter().filter(|(_, a)| *a).count();
    out.push_str(&format!("{} migrations: {applied} applied, {} pending\n", status.len(), status.len() - applied));
    out
}

/// Applies pending migrations under the start-up lock; returns the names it applied.
pub async fn up(db: &Db) -> anyhow::Result<Vec<String>> {
    let lock = db.startup_lock().await?;
    let before = pending(db).await?;
    db.migrate().await?;
    let after = pending(db).await?;
    lock.release().await?;
    Ok(before.into_iter().filter(|m| !after.contains(m)).collect())
}

/// Rolls back the last applied migration; returns its name (None: nothing was applied).
pub async fn down(db: &Db) -> anyhow::Result<Option<String>> {
    let lock = db.startup_lock().await?;
    let last = status(db).await?.into_iter().rev().find(|(_, applied)| *applied).map(|(name, _)| name);
    if last.is_some() {
        Migrator::down(&db.conn, Some(1)).await?;
    }
    lock.release().await?;
    Ok(last)
}

/// Drops every table and applies every migration.
pub async fn fresh(db: &Db) -> anyhow::Result<usize> {
    let lock = db.startup_lock().await?;
    Migrator::fresh(&db.conn).await?;
    let applied = status(db).await?.iter().filter(|(_, a)| *a).count();
    lock.release().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::render_status;

    #[test]
    fn status_lists_each_migration_then_a_summary() {
        let s = render_status(&[("m1_users".into(), true), ("m2_catalog".into(), false)]);
        assert_eq!(s, "applied  m1_users\npending  m2_catalog\n2 migrations: 1 applied, 1 pending\n");
    }
}
