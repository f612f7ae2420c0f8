//! A loopback SMTP server as strict as a real submission server about what the gateway must
//! get right: EHLO first, AUTH (PLAIN or LOGIN, checked credentials) before MAIL, MAIL before
//! RCPT, a recipient before DATA, dot-stuffing undone. It records every accepted message and
//! can be taken down (421, a transient failure), refuse a recipient (550, permanent), or hold
//! accepted messages before answering (to prove that two senders were busy at once).
use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::{Notify, watch},
};

pub const USER: &str = "user";
pub const PASSWORD: &str = "pass";

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    /// MAIL FROM.
    pub from: String,
    /// RCPT TO, in order.
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, without the final ".".
    pub data: String,
    /// (user, password) the client authenticated with.
    pub auth: Option<(String, String)>,
}

/// The parts of a message tests look at.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub subject: String,
    pub from: String,
    pub to: String,
    /// `multipart/alternative` etc.
    pub content_type: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub message_id: Option<String>,
}

impl Received {
    pub fn parsed(&self) -> Parsed {
        let m = MessageParser::default().parse(self.data.as_bytes()).expect("a parsable message");
        let addr = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first()).map(|a| {
                let email = a.address().unwrap_or_default();
                match a.name() {
                    Some(n) => format!("{n} <{email}>"),
                    None => email.to_string(),
                }
            })
        };
        let ct = m.content_type().expect("a Content-Type");
        let mut text = None;
        let mut html = None;
        for part in &m.parts {
            match &part.body {
                PartType::Text(t) if text.is_none() => text = Some(t.to_string()),
                PartType::Html(h) if html.is_none() => html = Some(h.to_string()),
                _ => {}
            }
        }
        Parsed {
            subject: m.subject().unwrap_or_default().to_string(),
            from: addr(m.from()).unwrap_or_default(),
            to: addr(m.to()).unwrap_or_default(),
            content_type: format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
            text,
            html,
            message_id: m.message_id().map(str::to_string),
        }
    }
}

#[derive(Default)]
struct Inner {
    down: AtomicBool,
    rejected: Mutex<HashSet<String>>,
    messages: Mutex<Vec<Received>>,
    arrived: Notify,
    /// Connections answered with 421 while down.
    refused: AtomicUsize,
    /// Messages whose final 250 waits for `release`, now and at most at once.
    held: AtomicUsize,
    max_held: AtomicUsize,
    held_changed: Notify,
}

pub struct FakeSmtp {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        let (gate, _) = watch::channel(false);
        let (i, g) = (inner.clone(), gate.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (i, held) = (i.clone(), g.subscribe());
                tokio::spawn(async move {
                    let _ = session(stream, i, held).await;
                });
            }
        });
        Self { addr, inner, gate, task }
    }

    /// `smtp://user:pass@127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("smtp://{USER}:{PASSWORD}@{}", self.addr)
    }

    /// Down: new connections, and the next command on open ones, get `421 4.3.0` and are closed.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Connections refused while down.
    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// Answer `550 5.1.1` to RCPT TO this address.
    pub fn reject_rcpt(&self, addr: &str) {
        self.inner.rejected.lock().unwrap().insert(addr.to_ascii_lowercase());
    }

    /// While held, a complete message waits before its 250 (and before it is recorded).
    pub fn hold(&self, hold: bool) {
        self.gate.send_replace(hold);
    }

    /// The most messages that were held at the same moment.
    pub fn max_held(&self) -> usize {
        self.inner.max_held.load(Ordering::SeqCst)
    }

    /// Waits until `n` messages are held at once.
    pub async fn wait_held(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.inner.held_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = self.inner.held.load(Ordering::SeqCst);
            if now >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("fake SMTP: waited 20 s for {n} messages held at once; {now} are");
            }
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.inner.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived, then returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let got = self.inner.messages.lock().unwrap().len();
            if got >= n {
                return self.messages();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("fake SMTP: waited 30 s for {n} messages; {got} arrived");
            }
        }
    }
}

/// One write per reply: a reply split over two segments waits for a delayed ACK (40 ms).
async fn reply(w: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    w.write_all(format!("{text}\r\n").as_bytes()).await
}

/// The address inside `<…>` of `MAIL FROM:<a> …` / `RCPT TO:<a>`.
fn angle_addr(arg: &str) -> Option<String> {
    let start = arg.find('<')?;
    let end = arg[start..].find('>')? + start;
    Some(arg[start + 1..end].to_string())
}

fn b64(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

async fn session(stream: TcpStream, inner: Arc<Inner>, mut gate: watch::Receiver<bool>) -> std::io::Result<()> {
    const DOWN: &str = "421 4.3.0 service not available";
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if inner.down.load(Ordering::SeqCst) {
        inner.refused.fetch_add(1, Ordering::SeqCst);
        return reply(&mut w, DOWN).await;
    }
    reply(&mut w, "220 fake.smtp.test ESMTP ready").await?;
    let (mut greeted, mut auth, mut from, mut rcpts) = (false, None::<(String, String)>, None::<String>, Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if inner.down.load(Ordering::SeqCst) {
            inner.refused.fetch_add(1, Ordering::SeqCst);
            return reply(&mut w, DOWN).await;
        }
        let cmd = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                greeted = true;
                (from, rcpts) = (None, Vec::new());
                reply(&mut w, "250-fake.smtp.test\r\n250 AUTH PLAIN LOGIN").await?;
            }
            "AUTH" if !greeted => reply(&mut w, "503 5.5.1 EHLO first").await?,
            "AUTH" if auth.is_some() => reply(&mut w, "503 5.5.1 already authenticated").await?,
            "AUTH" => {
                let (mech, initial) = arg.split_once(' ').unwrap_or((arg, ""));
                let creds = match mech.to_ascii_uppercase().as_str() {
                    "PLAIN" => {
                        let mut resp = initial.to_string();
                        if resp.is_empty() {
                            reply(&mut w, "334 ").await?;
                            line.clear();
                            r.read_line(&mut line).await?;
                            resp = line.trim().to_string();
                        }
                        b64(&resp).and_then(|s| {
                            let mut p = s.split('\0');
                            let (_authz, user, pass) = (p.next()?, p.next()?, p.next()?);
                            Some((user.to_string(), pass.to_string()))
                        })
                    }
                    "LOGIN" => {
                        reply(&mut w, "334 VXNlcm5hbWU6").await?;
                        line.clear();
                        r.read_line(&mut line).await?;
                        let user = b64(&line);
                        reply(&mut w, "334 UGFzc3dvcmQ6").await?;
                        line.clear();
                        r.read_line(&mut line).await?;
                        user.zip(b64(&line))
                    }
                    _ => {
                        reply(&mut w, "504 5.5.4 mechanism not supported").await?;
                        continue;
                    }
                };
                match creds {
                    Some((u, p)) if u == USER && p == PASSWORD => {
                        auth = Some((u, p));
                        reply(&mut w, "235 2.7.0 Authentication successful").await?;
                    }
                    _ => reply(&mut w, "535 5.7.8 Authentication credentials invalid").await?,
                }
            }
            "MAIL" if !greeted => reply(&mut w, "503 5.5.1 EHLO first").await?,
            "MAIL" if auth.is_none() => reply(&mut w, "530 5.7.0 Authentication required").await?,
            "MAIL" => match angle_addr(arg).filter(|_| arg.to_ascii_uppercase().starts_with("FROM:")) {
                Some(a) => {
                    (from, rcpts) = (Some(a), Vec::new());
                    reply(&mut w, "250 2.1.0 OK").await?;
                }
                None => reply(&mut w, "501 5.5.4 syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" if from.is_none() => reply(&mut w, "503 5.5.1 MAIL first").await?,
            "RCPT" => match angle_addr(arg).filter(|_| arg.to_ascii_uppercase().starts_with("TO:")) {
                Some(a) if inner.rejected.lock().unwrap().contains(&a.to_ascii_lowercase()) => {
                    reply(&mut w, "550 5.1.1 mailbox unavailable").await?
                }
                Some(a) => {
                    rcpts.push(a);
                    reply(&mut w, "250 2.1.5 OK").await?;
                }
                None => reply(&mut w, "501 5.5.4 syntax: RCPT TO:<address>").await?,
            },
            "DATA" if rcpts.is_empty() => reply(&mut w, "503 5.5.1 RCPT first").await?,
            "DATA" => {
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                if *gate.borrow() {
                    let now = inner.held.fetch_add(1, Ordering::SeqCst) + 1;
                    inner.max_held.fetch_max(now, Ordering::SeqCst);
                    inner.held_changed.notify_waiters();
                    let _ = gate.wait_for(|held| !*held).await;
                    inner.held.fetch_sub(1, Ordering::SeqCst);
                }
                let msg = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut rcpts),
                    data,
                    auth: auth.clone(),
                };
                inner.messages.lock().unwrap().push(msg);
                inner.arrived.notify_waiters();
                reply(&mut w, "250 2.0.0 queued").await?;
            }
            "RSET" => {
                (from, rcpts) = (None, Vec::new());
                reply(&mut w, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "QUIT" => return reply(&mut w, "221 2.0.0 bye").await,
            _ => reply(&mut w, "502 5.5.2 command not recognized").await?,
        }
    }
}
