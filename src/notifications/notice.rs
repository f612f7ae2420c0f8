//! What each notification says: one typed `Notice` per event, its key (kind, subject, period),
//! its links, and its text in three forms: the stored title and body, a plain-text email and
//! an HTML email. Amounts are written as people in Indonesia write them (Rp 150.000) and times
//! in Western Indonesia Time (UTC+7, no daylight saving).
use chrono::{DateTime, FixedOffset, Utc};

use super::NotificationKind;

/// One event a user is told about, with everything its text needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    LowCredit { subscription_id: i64, app: AppName, due: DateTime<Utc>, amount: i64, balance: i64 },
    Renewed { subscription_id: i64, app: AppName, period_start: DateTime<Utc>, until: DateTime<Utc>, amount: i64 },
    GraceStarted { subscription_id: i64, app: AppName, required: i64, balance: i64, grace_end: DateTime<Utc> },
    GraceReminder { subscription_id: i64, app: AppName, required: i64, balance: i64, grace_end: DateTime<Utc> },
    Suspended { subscription_id: i64, app: AppName, grace_end: DateTime<Utc>, kept_until: DateTime<Utc> },
    Expired { subscription_id: i64, app: AppName, period_end: DateTime<Utc>, reason: String },
    TopUpSettled { transaction_id: i64, reference: String, amount: i64, balance: i64 },
    TopUpFailed { transaction_id: i64, reference: String, amount: i64, status: &'static str },
    InstanceRunning { instance_id: i64, subscription_id: i64, app: String, url: Option<String>, rollout: String },
    InstanceError { instance_id: i64, subscription_id: i64, app: String, reason: String, rollout: String },
    Announcement { broadcast: String, title: String, body: String },
}

/// A subscription's service and plan, as the owner knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppName {
    pub service: String,
    pub plan: String,
}

impl std::fmt::Display for AppName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} plan)", self.service, self.plan)
    }
}

/// What the notification links to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub subscription_id: Option<i64>,
    pub transaction_id: Option<i64>,
    pub instance_id: Option<i64>,
}

/// The words of a notice: `title` doubles as the email subject, `body` is a few sentences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    pub title: String,
    pub body: String,
}

/// An email ready to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Notice {
    pub fn kind(&self) -> NotificationKind {
        use NotificationKind as K;
        match self {
            Self::LowCredit { .. } => K::LowCredit,
            Self::Renewed { .. } => K::Renewed,
            Self::GraceStarted { .. } => K::GraceStarted,
            Self::GraceReminder { .. } => K::GraceReminder,
            Self::Suspended { .. } => K::Suspended,
            Self::Expired { .. } => K::Expired,
            Self::TopUpSettled { .. } => K::TopUpSettled,
            Self::TopUpFailed { .. } => K::TopUpFailed,
            Self::InstanceRunning { .. } => K::InstanceRunning,
            Self::InstanceError { .. } => K::InstanceError,
            Self::Announcement { .. } => K::Announcement,
        }
    }

    /// `KIND:subject:period`: the same event seen twice (a re-run job, a replayed webhook, two
    /// replicas) gives the same key, so the second insert does nothing.
    pub fn event_key(&self) -> String {
        let kind = self.kind().as_str();
        let ts = |t: &DateTime<Utc>| t.timestamp();
        match self {
            Self::LowCredit { subscription_id, due, .. } => format!("{kind}:sub{subscription_id}:{}", ts(due)),
            Self::Renewed { subscription_id, period_start, .. } => {
                format!("{kind}:sub{subscription_id}:{}", ts(period_start))
            }
            Self::GraceStarted { subscription_id, grace_end, .. }
            | Self::GraceReminder { subscription_id, grace_end, .. }
            | Self::Suspended { subscription_id, grace_end, .. } => {
                format!("{kind}:sub{subscription_id}:{}", ts(grace_end))
            }
            Self::Expired { subscription_id, period_end, .. } => {
                format!("{kind}:sub{subscription_id}:{}", ts(period_end))
            }
            Self::TopUpSettled { transaction_id, .. } | Self::TopUpFailed { transaction_id, .. } => {
                format!("{kind}:tx{transaction_id}")
            }
            Self::InstanceRunning { instance_id, rollout, .. } | Self::InstanceError { instance_id, rollout, .. } => {
                format!("{kind}:inst{instance_id}:{rollout}")
            }
            Self::Announcement { broadcast, .. } => format!("{kind}:{broadcast}"),
        }
    }

    pub fn links(&self) -> Links {
        let sub = |id: &i64| Links { subscription_id: Some(*id), ..Default::default() };
        match self {
            Self::LowCredit { subscription_id, .. }
            | Self::Renewed { subscription_id, .. }
            | Self::GraceStarted { subscription_id, .. }
            | Self::GraceReminder { subscription_id, .. }
            | Self::Suspended { subscription_id, .. }
            | Self::Expired { subscription_id, .. } => sub(subscription_id),
            Self::TopUpSettled { transaction_id, .. } | Self::TopUpFailed { transaction_id, .. } => {
                Links { transaction_id: Some(*transaction_id), ..Default::default() }
            }
            Self::InstanceRunning { instance_id, subscription_id, .. }
            | Self::InstanceError { instance_id, subscription_id, .. } => {
                Links { subscription_id: Some(*subscription_id), instance_id: Some(*instance_id), ..Default::default() }
            }
            Self::Announcement { .. } => Links::default(),
        }
    }

    pub fn text(&self) -> Text {
        let (title, body) = match self {
            Self::LowCredit { app, due, amount, balance, .. } => (
                format!("Top up before {} renews", app.service),
                format!(
                    "{app} renews on {} for {}. Your balance is {}, which is {} short. Top up before then to keep it running.",
                    when(due),
                    rupiah(*amount),
                    rupiah(*balance),
                    rupiah(amount - balance)
                ),
            ),
            Self::Renewed { app, until, amount, .. } => (
                format!("{} renewed", app.service),
                format!("We charged {} for {app}. It is paid until {}.", rupiah(*amount), when(until)),
            ),
            Self::GraceStarted { app, required, balance, grace_end, .. } => (
                format!("Payment for {} failed", app.service),
                format!(
                    "We could not charge {} for {app}: your balance is {}, which is {} short. Your app keeps running until {}. Top up by then, or it will be suspended.",
                    rupiah(*required),
                    rupiah(*balance),
                    rupiah(required - balance),
                    when(grace_end)
                ),
            ),
            Self::GraceReminder { app, required, balance, grace_end, .. } => (
                format!("{} will be suspended on {}", app.service, day(grace_end)),
                format!(
                    "The grace period of {app} ends on {}. Top up at least {} (the renewal is {}, your balance {}) to keep it running.",
                    when(grace_end),
                    rupiah(required - balance),
                    rupiah(*required),
                    rupiah(*balance)
                ),
            ),
            Self::Suspended { app, kept_until, .. } => (
                format!("{} suspended", app.service),
                format!(
                    "The grace period ended without payment, so {app} is suspended and its app is stopped. Your data is kept until {}: top up and renew to bring it back.",
                    when(kept_until)
                ),
            ),
            Self::Expired { app, reason, .. } => (
                format!("{} subscription ended", app.service),
                format!("Your subscription to {app} has ended: {reason}. Its app and data are being removed."),
            ),
            Self::TopUpSettled { reference, amount, balance, .. } => (
                format!("Top-up of {} received", rupiah(*amount)),
                format!(
                    "{} was added to your wallet ({reference}). Your balance is now {}.",
                    rupiah(*amount),
                    rupiah(*balance)
                ),
            ),
            Self::TopUpFailed { reference, amount, status, .. } => (
                format!("Top-up of {} did not go through", rupiah(*amount)),
                format!("Your top-up {reference} {status}. Nothing was added to your wallet and nothing was charged."),
            ),
            Self::InstanceRunning { app, url, .. } => (
                format!("{app} is running"),
                match url {
                    Some(u) => format!("Your {app} app is ready at {u}."),
                    None => format!("Your {app} app is ready."),
                },
            ),
            Self::InstanceError { app, reason, .. } => (
                format!("{app} could not start"),
                format!("Your {app} app reported a problem: {reason}. You can retry or restart it from your apps."),
            ),
            Self::Announcement { title, body, .. } => (title.clone(), body.clone()),
        };
        Text { title, body }
    }

    /// The email for this notice: the same words, as plain text and as HTML.
    pub fn email(&self) -> Email {
        let Text { title, body } = self.text();
        let footer = "You get this email because of your MinisPod account. Choose which notices reach you by email in your profile's notification preferences.";
        let text = format!("{title}\n\n{body}\n\n--\n{footer}\n");
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;color:#1f2937;max-width:560px;margin:0 auto;padding:24px\">\
             <h1 style=\"font-size:20px\">{t}</h1><p style=\"font-size:15px;line-height:1.5\">{b}</p>\
             <hr style=\"border:none;border-top:1px solid #e5e7eb\"><p style=\"font-size:12px;color:#6b7280\">{f}</p>\
             </body></html>\n",
            t = escape(&title),
            b = escape(&body),
            f = escape(footer),
        );
        Email { subject: title, text, html }
    }
}

/// Whole IDR as written in Indonesia: `Rp 150.000`, `-Rp 5.000`.
pub fn rupiah(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    if amount < 0 { format!("-Rp {grouped}") } else { format!("Rp {grouped}") }
}

/// Western Indonesia Time.
const WIB: FixedOffset = match FixedOffset::east_opt(7 * 3600) {
    Some(o) => o,
    None => panic!("UTC+7 is a valid offset"),
};

/// `5 Jan 2027, 14:00 WIB`.
pub fn when(t: &DateTime<Utc>) -> String {
    format!("{} WIB", t.with_timezone(&WIB).format("%-d %b %Y, %H:%M"))
}

/// `5 Jan 2027`.
pub fn day(t: &DateTime<Utc>) -> String {
    t.with_timezone(&WIB).format("%-d %b %Y").to_string()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        AppName { service: "n8n".into(), plan: "Basic".into() }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn rupiah_groups_thousands_with_dots() {
        assert_eq!(rupiah(0), "Rp 0");
        assert_eq!(rupiah(999), "Rp 999");
        assert_eq!(rupiah(1_000), "Rp 1.000");
        assert_eq!(rupiah(150_000), "Rp 150.000");
        assert_eq!(rupiah(10_000_000), "Rp 10.000.000");
        assert_eq!(rupiah(-5_000), "-Rp 5.000");
    }

    #[test]
    fn times_are_western_indonesia_time() {
        assert_eq!(when(&t("2027-01-04T17:30:00Z")), "5 Jan 2027, 00:30 WIB");
        assert_eq!(day(&t("2027-01-04T17:30:00Z")), "5 Jan 2027");
    }

    #[test]
    fn grace_notice_names_the_date_and_the_shortfall() {
        let n = Notice::GraceStarted {
            subscription_id: 7,
            app: app(),
            required: 150_000,
            balance: 20_000,
            grace_end: t("2027-01-08T02:00:00Z"),
        };
        let text = n.text();
        assert_eq!(text.title, "Payment for n8n failed");
        assert!(text.body.contains("Rp 150.000"), "{}", text.body);
        assert!(text.body.contains("Rp 130.000 short"), "{}", text.body);
        assert!(text.body.contains("8 Jan 2027, 09:00 WIB"), "{}", text.body);
        assert_eq!(n.event_key(), format!("GRACE_STARTED:sub7:{}", t("2027-01-08T02:00:00Z").timestamp()));
        assert_eq!(n.links().subscription_id, Some(7));
    }

    #[test]
    fn the_html_part_escapes_what_admins_and_services_wrote() {
        let n = Notice::Announcement {
            broadcast: "b1".into(),
            title: "Maintenance <tonight>".into(),
            body: "DB & \"cache\" upgrade".into(),
        };
        let e = n.email();
        assert_eq!(e.subject, "Maintenance <tonight>");
        assert!(e.html.contains("Maintenance &lt;tonight&gt;"));
        assert!(e.html.contains("DB &amp; &quot;cache&quot; upgrade"));
        assert!(e.text.starts_with("Maintenance <tonight>\n\nDB & \"cache\" upgrade"));
    }

    #[test]
    fn every_kind_has_its_own_key_space() {
        let a =
            Notice::TopUpSettled { transaction_id: 3, reference: "TXMP-103".into(), amount: 50_000, balance: 50_000 };
        let b =
            Notice::TopUpFailed { transaction_id: 3, reference: "TXMP-103".into(), amount: 50_000, status: "expired" };
        assert_ne!(a.event_key(), b.event_key());
        assert_eq!(a.text().title, "Top-up of Rp 50.000 received");
    }
}
