//! Benchmark: one billing pass that fans out BENCH_NOTICES (1,000) notifications with their
//! emails, on PostgreSQL, into the fake SMTP server of the tests (tests/support/fake_smtp.rs).
//!
//! Every user holds one paid subscription and exactly its price, so the renewal pass fails to
//! charge each one and records a GRACE_STARTED notice and a queued email in the same
//! transaction as the grace. Reports the pass (time, per notice), then the sender: emails per
//! second into the sink, counted from the start of the pass, and checks each email arrived once.
//!
//! `cargo bench --bench notifications` (BENCH_DATABASE_URL names the PostgreSQL server)
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/support/fake_smtp.rs"]
mod fake_smtp;
#[path = "support.rs"]
mod support;

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use minispod_gateway::{
    app::{App, init_crypto},
    auth::Viewer,
    catalog::PlanType,
    clock::OffsetClock,
    config::{MailSettings, SecretString},
    jobs::billing::{self, BillingJob},
    notifications::{EmailStatus, entity::notification, entity::outbox, outbox::PARALLEL_SENDS},
    subscriptions::service::{self as subscriptions, SubscribeInput},
    users::Role,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use support::env_or;

const PRICE: i64 = 30_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_crypto();
    support::with_fresh_database(|url| run(url, env_or("BENCH_NOTICES", 1_000))).await
}

async fn run(url: String, n: usize) -> anyhow::Result<()> {
    let smtp = fake_smtp::FakeSmtp::start().await;
    let mut mail = MailSettings::new(SecretString::new(smtp.url()), "MinisPod <no-reply@minispod.test>".into());
    mail.poll_interval = Duration::from_secs(1);
    let mut config = support::config(url)?;
    config.notifications.mail = Some(mail);
    let clock = Arc::new(OffsetClock::default());
    let app = App::build_with_clock(config, clock.clone()).await?;
    let state = app.state.clone();
    tokio::spawn(app.run(std::future::pending()));

    // Setup (not measured): n users, each with one subscription and a balance of zero after it.
    let plan = support::create_bench_plan(&state, PlanType::Basic, PRICE, None, None).await?;
    let users = support::create_users(&state, n).await?;
    let mut period_end = state.now();
    for chunk in users.chunks(16) {
        let subscribed = futures::future::join_all(chunk.iter().map(|&user_id| {
            let state = state.clone();
            async move {
                support::give_credit(&state, user_id, PRICE).await?;
                let viewer = Viewer { id: user_id, role: Role::User };
                let input =
                    SubscribeInput { plan_id: plan.id, instance_name: None, idempotency_key: None, coupon_code: None };
                anyhow::Ok(subscriptions::subscribe(&state, viewer, input).await?)
            }
        }))
        .await;
        for s in subscribed {
            period_end = period_end.max(s?.period_end);
        }
    }
    clock.advance(period_end - state.now() + chrono::Duration::hours(1));

    // The pass: n failed charges, each with its grace, its notice and its queued email. The
    // sink holds what arrives meanwhile, so the sender is then timed on a full backlog.
    smtp.hold(true);
    let started = Instant::now();
    let report = billing::run(&state, BillingJob::Renewals).await?;
    let pass = started.elapsed();
    anyhow::ensure!(
        (report.processed, report.failed) == (n, n),
        "every renewal fails for want of credit: {} processed, {} failed",
        report.processed,
        report.failed
    );
    let notices = notification::Entity::find()
        .filter(notification::Column::Kind.eq(minispod_gateway::notifications::NotificationKind::GraceStarted))
        .count(&state.db.conn)
        .await?;
    anyhow::ensure!(notices as usize == n, "{notices} notices for {n} renewals");
    let queued = outbox::Entity::find().count(&state.db.conn).await?;
    anyhow::ensure!(queued as usize == n, "{queued} emails queued for {n} notices");

    smtp.wait_held(1).await; // the sender is busy: the backlog is all queued
    let released = Instant::now();
    smtp.hold(false);
    let received = smtp.wait_for(n).await;
    let sending = released.elapsed();
    let recipients: HashSet<_> = received.iter().flat_map(|m| m.to.clone()).collect();
    anyhow::ensure!(received.len() == n && recipients.len() == n, "each email exactly once");
    let sent = || outbox::Entity::find().filter(outbox::Column::Status.eq(EmailStatus::Sent)).count(&state.db.conn);
    while (sent().await? as usize) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "notifications on PostgreSQL, {n} subscriptions: one RENEWALS pass wrote {n} GRACE_STARTED notices, each with \
         its queued email in its subscription's transaction, in {:.2} s ({:.2} ms per notice); the sender then \
         delivered the backlog of {n} emails to the fake SMTP server in {:.2} s ({:.0} emails/s, {PARALLEL_SENDS} \
         connections), each exactly once",
        pass.as_secs_f64(),
        pass.as_secs_f64() * 1e3 / n as f64,
        sending.as_secs_f64(),
        n as f64 / sending.as_secs_f64(),
    );
    Ok(())
}
