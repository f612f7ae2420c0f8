//! Email delivery through the outbox: what arrives at the SMTP server, preferences, retries
//! with backoff while the server is down, FAILED after the last attempt or a permanent refusal,
//! the admins' view of deliveries, and several replicas sharing one outbox (PostgreSQL).
use std::{collections::HashMap, time::Duration};

use minispod_gateway::{
    config::{MailSettings, SecretString},
    notifications::{EmailStatus, entity::outbox},
};
use sea_orm::{EntityTrait, QueryOrder, Set};
use serde_json::{Value, json};

use crate::{
    observability::Captured,
    support::{
        Session, TestApp, error_code, eventually,
        fake_smtp::{self, FakeSmtp},
    },
};

const FROM: &str = "MinisPod <no-reply@minispod.test>";
const BROADCAST: &str = "mutation($t: String!, $b: String!) { broadcastNotification(title: $t, body: $b, role: USER) }";
const DELIVERIES: &str = "query($s: EmailStatus) { emailDeliveries(status: $s) { totalCount edges { node { \
     id notificationId recipient subject status attempts lastError createdAt sentAt } } } }";

/// Mail to `fake`; retries wait a minute of the app's clock, which the tests move.
fn mail(fake: &FakeSmtp) -> MailSettings {
    let mut m = MailSettings::new(SecretString::new(fake.url()), FROM.into());
    m.retry_base = Duration::from_secs(60);
    m.poll_interval = Duration::from_millis(50);
    m.timeout = Duration::from_secs(5);
    m
}

async fn gateway_with(fake: &FakeSmtp, tweak: impl FnOnce(&mut MailSettings)) -> TestApp {
    let mut m = mail(fake);
    tweak(&mut m);
    TestApp::spawn_with(|c| c.notifications.mail = Some(m)).await
}

/// An announcement to every USER; returns the number of recipients.
async fn broadcast(app: &TestApp, admin: &Session, title: &str, body: &str) -> u64 {
    let v = app.gql_ok(Some(&admin.token), BROADCAST, json!({ "t": title, "b": body })).await;
    v["broadcastNotification"].as_u64().unwrap()
}

async fn rows(app: &TestApp) -> Vec<outbox::Model> {
    outbox::Entity::find().order_by_asc(outbox::Column::Id).all(&app.state.db.conn).await.unwrap()
}

/// Waits until every outbox row satisfies `f` (read from the database, no sleeping).
async fn until_rows(app: &TestApp, what: &str, f: impl Fn(&outbox::Model) -> bool) -> Vec<outbox::Model> {
    eventually(what, || async { rows(app).await.iter().all(&f) }).await;
    rows(app).await
}

/// An attempt has been made and its outcome recorded.
fn attempted(n: i32) -> impl Fn(&outbox::Model) -> bool {
    move |r| r.attempts == n && r.lease_until.is_none()
}

fn emails_total(app: &TestApp, result: &str) -> u64 {
    let text = app.state.metrics.render(&app.state);
    let series = format!("minispod_emails_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

fn per_recipient(messages: &[fake_smtp::Received], subject: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in messages.iter().filter(|m| m.parsed().subject == subject) {
        for to in &m.to {
            *seen.entry(to.clone()).or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn an_announcement_arrives_by_email_with_both_parts() {
    let fake = FakeSmtp::start().await;
    let app = gateway_with(&fake, |_| {}).await;
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    assert_eq!(broadcast(&app, &admin, "Maintenance tonight", "The cluster restarts at 23:00 & comes back.").await, 1);

    let got = fake.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.to, vec![ana.email.clone()]);
    assert_eq!(m.from, "no-reply@minispod.test");
    assert_eq!(m.auth, Some((fake_smtp::USER.to_string(), fake_smtp::PASSWORD.to_string())));
    let p = m.parsed();
    assert_eq!(p.subject, "Maintenance tonight");
    assert_eq!(p.from, FROM);
    assert_eq!(p.to, ana.email);
    assert_eq!(p.content_type, "multipart/alternative");
    let text = p.text.expect("a text/plain part");
    assert!(text.contains("The cluster restarts at 23:00 & comes back."), "{text}");
    let html = p.html.expect("a text/html part");
    assert!(html.contains("The cluster restarts at 23:00 &amp; comes back."), "{html}");
    assert!(html.contains("<h1"), "{html}");

    let sent = until_rows(&app, "the email is recorded as sent", |r| r.status == EmailStatus::Sent).await;
    assert_eq!(sent.len(), 1);
    let row = &sent[0];
    assert_eq!((row.attempts, row.lease_until, row.last_error.as_deref()), (1, None, None));
    assert!(row.sent_at.is_some());
    assert_eq!(p.message_id.as_deref(), Some(format!("outbox-{}@minispod.test", row.id).as_str()));
    assert_eq!(emails_total(&app, "sent"), 1);
}

#[tokio::test]
async fn users_who_turned_announcement_email_off_get_the_notice_but_no_email() {
    let fake = FakeSmtp::start().await;
    let app = gateway_with(&fake, |_| {}).await;
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    let bo = app.register("Bo").await;
    app.gql_ok(
        Some(&ana.token),
        "mutation { updateNotificationPreferences(preferences: [{kind: ANNOUNCEMENT, email: false}]) { kind email } }",
        json!({}),
    )
    .await;
    assert_eq!(broadcast(&app, &admin, "New plans", "Bigger disks for everyone.").await, 2);

    // The outbox is written with the notifications, so this is final once the mutation returned.
    let queued = rows(&app).await;
    assert_eq!(queued.iter().map(|r| r.recipient.as_str()).collect::<Vec<_>>(), vec![bo.email.as_str()]);
    let got = fake.wait_for(1).await;
    assert_eq!(got[0].to, vec![bo.email.clone()]);
    let v = app.gql_ok(Some(&ana.token), "{ unreadNotificationCount }", json!({})).await;
    assert_eq!(v["unreadNotificationCount"], 1, "Ana still gets the notification itself");
}

#[tokio::test]
async fn while_the_server_is_down_emails_wait_then_go_out_exactly_once() {
    let fake = FakeSmtp::start().await;
    fake.set_down(true);
    let app = gateway_with(&fake, |_| {}).await;
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    let bo = app.register("Bo").await;
    assert_eq!(broadcast(&app, &admin, "First", "One.").await, 2);

    let waiting = until_rows(&app, "both emails were tried once", attempted(1)).await;
    for r in &waiting {
        assert_eq!(r.status, EmailStatus::Queued, "{r:?}");
        let e = r.last_error.as_deref().unwrap_or_default();
        assert!(e.contains("421"), "{e}");
        assert!(r.next_attempt_at - r.created_at >= chrono::Duration::seconds(59), "{r:?}");
    }
    assert!(fake.refused() >= 2, "the server was asked and refused");
    assert!(fake.messages().is_empty());
    assert!(emails_total(&app, "retried") >= 2);

    // Up again, and the backoff elapsed: each email goes out once.
    fake.set_down(false);
    app.clock.advance(chrono::Duration::seconds(61));
    fake.wait_for(2).await;
    until_rows(&app, "both emails are recorded as sent", |r| r.status == EmailStatus::Sent && r.attempts == 2).await;
    // A later email goes out after any repeat of the first would have (the sender works in id
    // order), so the counts below are final.
    assert_eq!(broadcast(&app, &admin, "Second", "Two.").await, 2);
    let got = fake.wait_for(4).await;
    assert_eq!(got.len(), 4);
    let expected: HashMap<String, usize> = [(ana.email.clone(), 1), (bo.email.clone(), 1)].into();
    assert_eq!(per_recipient(&got, "First"), expected);
    assert_eq!(per_recipient(&got, "Second"), expected);
}

#[tokio::test]
async fn after_the_last_attempt_an_email_is_failed_listed_for_admins_and_not_sent_again() {
    let fake = FakeSmtp::start().await;
    fake.set_down(true);
    let app = gateway_with(&fake, |m| m.max_attempts = 2).await;
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    broadcast(&app, &admin, "Doomed", "This one never arrives.").await;

    until_rows(&app, "the first attempt", attempted(1)).await;
    let logs = Captured::default();
    let guard = logs.start();
    app.clock.advance(chrono::Duration::seconds(61));
    let failed = until_rows(&app, "the email failed", |r| r.status == EmailStatus::Failed).await;
    drop(guard);
    let warned: Vec<_> = logs.lines().into_iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(warned[0]["fields"]["outbox_id"], failed[0].id, "{warned:#?}");
    assert_eq!(warned[0]["fields"]["permanent"], false, "{warned:#?}");
    assert_eq!((failed[0].attempts, failed[0].lease_until), (2, None));
    assert_eq!((emails_total(&app, "retried"), emails_total(&app, "failed")), (1, 1));

    let v = app.gql_ok(Some(&admin.token), DELIVERIES, json!({ "s": "FAILED" })).await;
    let list = &v["emailDeliveries"];
    assert_eq!(list["totalCount"], 1, "{v}");
    let d = &list["edges"][0]["node"];
    assert_eq!(d["recipient"], ana.email.as_str(), "{v}");
    assert_eq!((&d["subject"], &d["status"], &d["attempts"]), (&json!("Doomed"), &json!("FAILED"), &json!(2)), "{v}");
    assert!(d["lastError"].as_str().unwrap().contains("421"), "{v}");
    assert_eq!(d["sentAt"], Value::Null);
    assert_eq!(d["id"], failed[0].id.to_string());
    let v = app.gql_ok(Some(&admin.token), DELIVERIES, json!({ "s": "QUEUED" })).await;
    assert_eq!(v["emailDeliveries"]["totalCount"], 0, "{v}");

    // The server is back and hours pass: only the next email goes out.
    fake.set_down(false);
    app.clock.advance(chrono::Duration::hours(2));
    broadcast(&app, &admin, "Later", "This one does.").await;
    let got = fake.wait_for(1).await;
    assert_eq!(got.iter().map(|m| m.parsed().subject).collect::<Vec<_>>(), vec!["Later".to_string()]);
    let v = app.gql_ok(Some(&admin.token), DELIVERIES, json!({})).await;
    assert_eq!(v["emailDeliveries"]["totalCount"], 2, "{v}");
}

#[tokio::test]
async fn a_refused_recipient_fails_after_one_attempt() {
    let fake = FakeSmtp::start().await;
    let app = gateway_with(&fake, |_| {}).await;
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    let bo = app.register("Bo").await;
    fake.reject_rcpt(&ana.email);
    broadcast(&app, &admin, "Hello", "Hi.").await;

    let got = fake.wait_for(1).await;
    assert_eq!(got[0].to, vec![bo.email.clone()]);
    let done = until_rows(&app, "both outcomes recorded", attempted(1)).await;
    let anas = done.iter().find(|r| r.recipient == ana.email).unwrap();
    assert_eq!(anas.status, EmailStatus::Failed);
    let e = anas.last_error.as_deref().unwrap_or_default();
    assert!(e.contains("550"), "{e}");
    assert_eq!(emails_total(&app, "failed"), 1);
    assert_eq!(emails_total(&app, "retried"), 0);
}

#[tokio::test]
async fn a_sender_whose_lease_was_taken_over_does_not_record_its_outcome() {
    let fake = FakeSmtp::start().await;
    let app = gateway_with(&fake, |_| {}).await;
    let admin = app.login_admin().await;
    app.register("Ana").await;
    fake.hold(true);
    broadcast(&app, &admin, "Slow", "Held at the server.").await;
    fake.wait_held(1).await;

    // While the sender waits for the server's answer, its lease is taken over (as another
    // replica does once a lease ran out).
    let row = rows(&app).await.remove(0);
    let (lease, attempts) = (row.lease_until.expect("claimed with a lease"), row.attempts);
    let theirs = lease + chrono::Duration::hours(1);
    let mut taken: outbox::ActiveModel = row.clone().into();
    taken.lease_until = Set(Some(theirs));
    outbox::Entity::update(taken).exec(&app.state.db.conn).await.unwrap();
    fake.hold(false);

    // The sender handles emails one at a time: once a later one is recorded, so was the first.
    broadcast(&app, &admin, "Next", "After the slow one.").await;
    fake.wait_for(2).await;
    eventually("the later email is recorded", || async { rows(&app).await[1].status == EmailStatus::Sent }).await;
    let first = rows(&app).await.remove(0);
    assert_eq!(first.status, EmailStatus::Queued, "{first:?}");
    assert_eq!((first.lease_until, first.attempts, first.sent_at), (Some(theirs), attempts, None));
}

#[tokio::test]
async fn email_deliveries_are_for_admins_only() {
    let fake = FakeSmtp::start().await;
    let app = gateway_with(&fake, |_| {}).await;
    let ana = app.register("Ana").await;
    let v = app.gql(Some(&ana.token), DELIVERIES, json!({})).await;
    assert_eq!(error_code(&v), "FORBIDDEN", "{v}");
    let v = app.gql(None, DELIVERIES, json!({})).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED", "{v}");
}

#[tokio::test]
async fn without_a_mail_server_no_email_is_queued() {
    let app = TestApp::spawn().await;
    assert!(app.state.config.notifications.mail.is_none());
    let admin = app.login_admin().await;
    let ana = app.register("Ana").await;
    assert_eq!(broadcast(&app, &admin, "Quiet", "Stored, not mailed.").await, 1);
    let v = app.gql_ok(Some(&ana.token), "{ unreadNotificationCount }", json!({})).await;
    assert_eq!(v["unreadNotificationCount"], 1);
    assert!(rows(&app).await.is_empty());
}

mod needs_postgres {
    use std::sync::Arc;

    use minispod_gateway::users::{Role, entity as users};

    use super::*;
    use crate::support::TestDb;

    #[tokio::test]
    #[ignore = "needs PostgreSQL (two replicas share one database); .ci/run runs it on PostgreSQL"]
    async fn two_replicas_share_the_outbox_and_send_each_email_once() {
        const N: usize = 200;
        let fake = FakeSmtp::start().await;
        let small_batches = |m: &mut MailSettings| m.batch = 10;
        let a = gateway_with(&fake, small_batches).await;
        assert!(a.db.is_postgres(), "two replicas need PostgreSQL (TEST_DATABASE_URL)");
        let mut m = mail(&fake);
        small_batches(&mut m);
        let b = TestApp::spawn_on(Arc::<TestDb>::clone(&a.db), |c| c.notifications.mail = Some(m)).await;
        let admin = a.login_admin().await;
        let now = a.state.now();
        let people = (0..N).map(|i| users::ActiveModel {
            name: Set(format!("User {i}")),
            email: Set(format!("user{i}@example.com")),
            password_hash: Set("not-a-hash".into()),
            role: Set(Role::User),
            is_active: Set(true),
            token_version: Set(0),
            balance: Set(0),
            total_top_up: Set(0),
            total_spent: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        users::Entity::insert_many(people).exec_without_returning(&a.state.db.conn).await.unwrap();

        // Each sender sends one email at a time: two held at once means both replicas were
        // sending at the same moment.
        fake.hold(true);
        assert_eq!(broadcast(&a, &admin, "To all", "Everyone once.").await, N as u64);
        fake.wait_held(2).await;
        fake.hold(false);

        let got = fake.wait_for(N).await;
        let sent = until_rows(&a, "every email is recorded as sent", |r| r.status == EmailStatus::Sent).await;
        assert_eq!(sent.len(), N);
        assert!(sent.iter().all(|r| r.attempts == 1), "every email was claimed once");
        let counts = per_recipient(&got, "To all");
        assert_eq!(counts.len(), N);
        assert!(counts.values().all(|n| *n == 1), "{counts:?}");
        let (by_a, by_b) = (emails_total(&a, "sent"), emails_total(&b, "sent"));
        assert_eq!(by_a + by_b, N as u64);
        assert!(by_a > 0 && by_b > 0, "both replicas sent: {by_a} + {by_b}");
        assert!(fake.max_held() >= 2);
    }
}

#[tokio::test]
async fn a_failed_renewal_is_mailed_in_rupiah_unless_the_owner_turned_that_kind_off() {
    use crate::helpers::{fixture_with, give_credit};
    let fake = FakeSmtp::start().await;
    let m = mail(&fake);
    let f = fixture_with(10, move |c| c.notifications.mail = Some(m)).await;
    let subscribe = "mutation($p: ID!) { subscribe(input: { planId: $p }) { endDate } }";
    let prefs =
        "mutation { updateNotificationPreferences(preferences: [{ kind: GRACE_STARTED, email: false }]) { kind } }";
    let mut ends = vec![];
    for name in ["Ana", "Bo"] {
        let u = f.app.register(name).await;
        give_credit(&f.app, &f.admin, &u, 30_000).await;
        let v = f.app.gql_ok(Some(&u.token), subscribe, json!({ "p": f.plan("BASIC") })).await;
        ends.push((u, crate::helpers::ts(&v["subscribe"]["endDate"])));
    }
    let (ana, end) = ends[0].clone();
    let bo = ends[1].0.clone();
    f.app.gql_ok(Some(&bo.token), prefs, json!({})).await;
    f.app.clock.advance(end + chrono::Duration::hours(1) - f.app.state.now());
    let run = "mutation { runBillingJob(job: RENEWALS) { failed } }";
    assert_eq!(f.app.gql_ok(Some(&f.admin.token), run, json!({})).await["runBillingJob"]["failed"], 2);

    let got = fake.wait_for(1).await;
    let sent = until_rows(&f.app, "the email is sent", |r| r.status == EmailStatus::Sent).await;
    assert_eq!((got.len(), sent.len()), (1, 1), "Bo turned GRACE_STARTED email off");
    assert_eq!(got[0].to, vec![ana.email.clone()]);
    let p = got[0].parsed();
    assert_eq!(p.subject, "Payment for app-one failed");
    for part in [p.text.expect("text"), p.html.expect("html")] {
        assert!(part.contains("Rp 30.000") && part.contains("WIB"), "{part}");
    }
    let notices = "{ notifications { edges { node { kind } } } }";
    let v = f.app.gql_ok(Some(&bo.token), notices, json!({})).await;
    assert_eq!(v["notifications"]["edges"][0]["node"]["kind"], "GRACE_STARTED", "Bo still gets the notice");
}
