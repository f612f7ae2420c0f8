//! The only place that talks SMTP: the lettre transport built from `MailSettings`, the message
//! built from an outbox row, and what a refusal means for the row (try again later, or never).
use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{self, PoolConfig},
};

use crate::config::MailSettings;

/// An email as the outbox holds it.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    /// Doubles as the Message-ID, so a retried email is recognisably the same message.
    pub outbox_id: i64,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// Why an email did not go out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth another attempt: the server is unreachable, slow, busy (4xx) or refused our login.
    Transient(String),
    /// The same email will never be accepted: a 5xx reply to it, or an address we cannot write.
    Permanent(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Cap on one whole send (connect, login, envelope, data), beyond lettre's per-step timeout.
    pub send_timeout: Duration,
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, String> {
        let from: Mailbox = settings.from.parse().map_err(|e| format!("MINISPOD_MAIL_FROM is not an address: {e}"))?;
        let url = with_default_tls(settings.smtp_url.expose());
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            // lettre's message would quote the URL, password included.
            .map_err(|_| "MINISPOD_SMTP_URL is not a usable SMTP URL".to_string())?
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new().max_size(super::outbox::PARALLEL_SENDS as u32).idle_timeout(Duration::from_secs(30)),
            )
            .build();
        Ok(Self { transport, from, send_timeout: settings.timeout * 2 })
    }

    pub async fn send(&self, email: &Outgoing<'_>) -> Result<(), SendError> {
        let message = message(&self.from, email)?;
        match tokio::time::timeout(self.send_timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(SendError::Transient(format!("no answer within {} s", self.send_timeout.as_secs()))),
        }
    }
}

/// Checks that lettre accepts the URL (scheme, host, `tls=` value), without connecting.
pub fn check_url(url: &str) -> Result<(), String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(&with_default_tls(url))
        .map(|_| ())
        .map_err(|_| "is not a usable SMTP URL (smtp://user:pass@host:587, ?tls=required, or smtps://)".into())
}

/// lettre reads a bare `smtp://` as plain text forever; we upgrade with STARTTLS whenever the
/// server offers it (and default to the submission port, 587). `?tls=required` insists.
fn with_default_tls(url: &str) -> String {
    let url = url.trim();
    let Some(rest) = url.strip_prefix("smtp://") else {
        return url.to_string();
    };
    let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|pair| pair.starts_with("tls=")) {
        return url.to_string();
    }
    let sep = if rest.contains('?') { '&' } else { '?' };
    format!("{url}{sep}tls=opportunistic")
}

/// From, To, Subject and both bodies as multipart/alternative (plain text first: clients show
/// the last part they understand).
pub fn message(from: &Mailbox, email: &Outgoing<'_>) -> Result<Message, SendError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient {:?} is not an address: {e}", email.to)))?;
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject)
        .message_id(Some(format!("<outbox-{}@{domain}>", email.outbox_id)))
        .multipart(MultiPart::alternative_plain_html(email.text.to_string(), email.html.to_string()))
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

/// 5xx replies are final, except those about our login: a wrong password is the operators' to
/// fix, and the email should still go out once they have.
fn classify(e: &smtp::Error) -> SendError {
    let text = e.to_string();
    match e.status() {
        Some(code) if e.is_permanent() && !matches!(code.to_string().as_str(), "530" | "534" | "535" | "538") => {
            SendError::Permanent(text)
        }
        _ => SendError::Transient(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_smtp_urls_upgrade_when_offered() {
        assert_eq!(with_default_tls("smtp://u:p@mail:587"), "smtp://u:p@mail:587?tls=opportunistic");
        assert_eq!(with_default_tls("smtp://mail?x=1"), "smtp://mail?x=1&tls=opportunistic");
        assert_eq!(with_default_tls("smtp://mail:587?tls=required"), "smtp://mail:587?tls=required");
        assert_eq!(with_default_tls("smtps://u:p@mail"), "smtps://u:p@mail");
        assert!(check_url("smtp://u:p@mail:587").is_ok());
        assert!(check_url("smtps://mail").is_ok());
        assert!(check_url("smtp://mail?tls=sometimes").is_err());
        assert!(check_url("smtp://").is_err());
    }

    #[test]
    fn messages_carry_both_parts_and_a_stable_id() {
        let from: Mailbox = "MinisPod <no-reply@minispod.test>".parse().unwrap();
        let email = Outgoing { outbox_id: 7, to: "ana@example.com", subject: "Hi", text: "plain", html: "<p>rich</p>" };
        let raw = String::from_utf8(message(&from, &email).unwrap().formatted()).unwrap();
        for part in [
            "From: MinisPod <no-reply@minispod.test>",
            "To: ana@example.com",
            "Subject: Hi",
            "Message-ID: <outbox-7@minispod.test>",
            "multipart/alternative",
            "text/plain",
            "text/html",
        ] {
            assert!(raw.contains(part), "{part} missing from {raw}");
        }
        let bad = Outgoing { to: "not an address", ..email };
        assert!(matches!(message(&from, &bad), Err(SendError::Permanent(_))));
    }
}
