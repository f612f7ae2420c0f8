//! The one configuration struct. It is the only place that reads the environment; everything
//! else receives a `Config` (tests build one directly).
use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(***)")
    }
}

/// `MINISPOD_ENV`: development keeps the zero-config defaults; production requires a
/// `JWT_SECRET` and turns demo seeding and introspection off and Midtrans status confirmation
/// on, unless each is set explicitly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// MINISPOD_ENV; the defaults below follow it.
    pub env: Environment,
    pub listen: SocketAddr,
    pub database_url: String,
    /// How long start-up waits for the database before it gives up with one line
    /// (MINISPOD_DB_CONNECT_TIMEOUT_SECS).
    pub db_connect_timeout: Duration,
    /// Apply pending migrations at start (under the start-up lock). Off: refuse to start while
    /// migrations are pending, so a migration Job (`minispod migrate up`) owns the schema.
    pub migrate_on_start: bool,
    /// `None`: generate one and keep it in the database so tokens survive restarts.
    pub jwt_secret: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub admin_email: String,
    /// `None`: generated on first start and printed once.
    pub admin_password: Option<SecretString>,
    /// Seed the demo catalog and demo users into an empty database.
    pub seed_demo: bool,
    pub graphql: GraphqlLimits,
    pub rate_limit: RateLimits,
    /// Honour `X-Forwarded-For` for the client IP (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Proxies in front of the gateway that append to `X-Forwarded-For`: the client is the entry
    /// this many places from the right (1 = the rightmost).
    pub trusted_proxies: usize,
    /// Concurrent argon2 computations; protects the runtime from login floods.
    pub password_hash_concurrency: usize,
    /// Browser origins allowed to call the API (MINISPOD_CORS_ORIGINS), normalised to
    /// `scheme://host[:port]`; `["*"]` allows any origin (no credentials: the API uses bearer
    /// tokens, never cookies).
    pub cors_origins: Vec<String>,
    pub persisted_queries: PersistedQueriesConfig,
    pub log_json: bool,
    /// Instances are reachable at `https://<subdomain>.<base_domain>` (MINISPOD_BASE_DOMAIN).
    pub base_domain: Option<String>,
    pub midtrans: MidtransConfig,
    /// How often the payment reconciler runs; `None` disables it (MINISPOD_PAYMENT_RECONCILE_SECS=0).
    pub payment_reconcile_interval: Option<Duration>,
    /// PENDING top-ups younger than this are left to the webhook.
    pub payment_reconcile_after: Duration,
    /// How often the billing jobs (renewals, grace periods) run; `None` disables the runner
    /// (MINISPOD_BILLING_INTERVAL_SECS=0); `runBillingJob` still works.
    pub billing_interval: Option<Duration>,
    /// Days an ACTIVE subscription keeps running after a failed renewal charge (0-30).
    pub grace_period_days: i64,
    /// Days a SUSPENDED subscription is kept (slot held) after its grace ended, before it expires.
    pub suspension_retention_days: i64,
    pub kube: KubeSettings,
    pub websocket: WsLimits,
    pub provisioning: ProvisionSettings,
    /// Bearer token required by `GET /metrics` (MINISPOD_METRICS_TOKEN); `None`: open.
    pub metrics_token: Option<SecretString>,
    /// Span export over OTLP/HTTP (needs the `otlp` cargo feature).
    pub otlp: OtlpSettings,
    pub notifications: NotificationSettings,
}

/// When billing notices go out, and the SMTP server that carries their emails.
#[derive(Clone, Debug)]
pub struct NotificationSettings {
    /// Days before a renewal that a short balance is reported (MINISPOD_LOW_CREDIT_DAYS).
    pub low_credit_days: i64,
    /// Hours before the grace period ends that the reminder goes out (MINISPOD_GRACE_REMINDER_HOURS).
    pub grace_reminder_hours: i64,
    /// None (MINISPOD_SMTP_URL unset): notifications are stored and announced, no email is queued.
    pub mail: Option<MailSettings>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self { low_credit_days: 3, grace_reminder_hours: 24, mail: None }
    }
}

#[derive(Clone, Debug)]
pub struct MailSettings {
    /// `smtp://user:pass@host:587` (STARTTLS when offered, `?tls=required` to insist),
    /// `smtps://…:465` (TLS from the start); lettre's URL form.
    pub smtp_url: SecretString,
    /// The From header (MINISPOD_MAIL_FROM), e.g. `MinisPod <no-reply@example.com>`.
    pub from: String,
    /// Attempts before an email is recorded as FAILED (MINISPOD_MAIL_MAX_ATTEMPTS).
    pub max_attempts: u32,
    /// The first retry waits this long; each later one twice as long, up to an hour
    /// (MINISPOD_MAIL_RETRY_BASE_SECS).
    pub retry_base: Duration,
    /// How often each replica's sender looks for due mail (MINISPOD_MAIL_POLL_SECS); mail
    /// queued by this replica wakes it at once.
    pub poll_interval: Duration,
    /// Emails one sender pass claims at a time.
    pub batch: u32,
    /// SMTP connect and command timeout.
    pub timeout: Duration,
}

impl MailSettings {
    pub fn new(smtp_url: SecretString, from: String) -> Self {
        Self {
            smtp_url,
            from,
            max_attempts: 8,
            retry_base: Duration::from_secs(30),
            poll_interval: Duration::from_secs(10),
            batch: 50,
            timeout: Duration::from_secs(20),
        }
    }
}

/// The standard OpenTelemetry variables the gateway honours.
#[derive(Clone, Debug)]
pub struct OtlpSettings {
    /// OTEL_EXPORTER_OTLP_ENDPOINT, e.g. `http://otel-collector:4318`; `None`: no export.
    pub endpoint: Option<String>,
    /// OTEL_EXPORTER_OTLP_HEADERS: `key=value,key=value` sent with every export.
    pub headers: std::collections::HashMap<String, String>,
    /// OTEL_SERVICE_NAME (default `minispod-gateway`).
    pub service_name: String,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self { endpoint: None, headers: Default::default(), service_name: "minispod-gateway".into() }
    }
}

fn read_telemetry(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = get("MINISPOD_METRICS_TOKEN") {
        if v.trim().len() < 16 || v.trim().chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError {
                var: "MINISPOD_METRICS_TOKEN",
                reason: "must be at least 16 characters without spaces".into(),
            });
        }
        c.metrics_token = Some(SecretString::new(v.trim()));
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let v = v.trim().trim_end_matches('/');
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err(ConfigError {
                var: "OTEL_EXPORTER_OTLP_ENDPOINT",
                reason: "must be an http:// or https:// URL such as http://otel-collector:4318".into(),
            });
        }
        c.otlp.endpoint = Some(v.to_string());
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_HEADERS") {
        for pair in v.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, val)) = pair.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
                return Err(ConfigError {
                    var: "OTEL_EXPORTER_OTLP_HEADERS",
                    reason: "must be key=value,key=value".into(),
                });
            };
            c.otlp.headers.insert(k.trim().to_string(), val.trim().to_string());
        }
    }
    if let Some(v) = get("OTEL_SERVICE_NAME") {
        c.otlp.service_name = v.trim().to_string();
    }
    Ok(())
}

/// Resources one WebSocket client may hold.
#[derive(Clone, Debug)]
pub struct WsLimits {
    /// A connection that sends no `connection_init` within this is closed with 4408.
    pub init_timeout: Duration,
    /// Live operations per connection; the one over gets an error.
    pub max_subscriptions: usize,
    /// Open connections per signed-in user; anonymous connections are bounded by the init timeout.
    pub max_connections_per_user: usize,
}

pub const MIDTRANS_SANDBOX_SNAP_URL: &str = "https://app.sandbox.midtrans.com/snap/v1";
pub const MIDTRANS_SANDBOX_API_URL: &str = "https://api.sandbox.midtrans.com";
pub const MIDTRANS_PRODUCTION_SNAP_URL: &str = "https://app.midtrans.com/snap/v1";
pub const MIDTRANS_PRODUCTION_API_URL: &str = "https://api.midtrans.com";

#[derive(Clone, Debug)]
pub struct MidtransConfig {
    /// `None`: top-ups fail with PAYMENT_PROVIDER_ERROR and webhooks are refused.
    pub server_key: Option<SecretString>,
    pub client_key: Option<String>,
    pub production: bool,
    /// Snap base, e.g. `https://app.sandbox.midtrans.com/snap/v1` (`/transactions` is appended).
    pub snap_url: String,
    /// Core API base, e.g. `https://api.sandbox.midtrans.com` (`/v2/{order}/status` is appended).
    pub api_url: String,
    /// Where Snap sends the customer after paying.
    pub finish_url: Option<String>,
    pub expiry_minutes: u32,
    /// Confirm every notification with the status API before applying it.
    pub verify_by_status: bool,
    pub timeout: Duration,
}

impl Default for MidtransConfig {
    fn default() -> Self {
        Self {
            server_key: None,
            client_key: None,
            production: false,
            snap_url: MIDTRANS_SANDBOX_SNAP_URL.into(),
            api_url: MIDTRANS_SANDBOX_API_URL.into(),
            finish_url: None,
            expiry_minutes: 60,
            verify_by_status: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where the Kubernetes client configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeSource {
    /// The standard discovery: `KUBECONFIG`, `~/.kube/config`, then the in-cluster service account.
    Infer,
    /// This kubeconfig file only (tests and the fake cluster point here).
    Kubeconfig(PathBuf),
    /// No cluster: cluster fields answer CLUSTER_UNAVAILABLE.
    Disabled,
}

#[derive(Clone, Debug)]
pub struct KubeSettings {
    pub source: KubeSource,
    /// Kubeconfig context to use instead of the current one.
    pub context: Option<String>,
    pub connect_timeout: Duration,
    /// Per-read timeout of ordinary requests; log follow streams have none (they idle by design).
    pub read_timeout: Duration,
}

/// How instances are laid out on the cluster (README: "Running apps on Kubernetes").
#[derive(Clone, Debug)]
pub struct ProvisionSettings {
    /// `spec.ingressClassName` of HTTP apps; `None` uses the cluster's default class.
    pub ingress_class: Option<String>,
    /// cert-manager ClusterIssuer named in the Ingress annotation; `None`: no annotation.
    pub cert_issuer: Option<String>,
    /// StorageClass of app volumes; `None` uses the cluster's default class.
    pub storage_class: Option<String>,
    /// Service type of TCP apps (databases).
    pub tcp_service_type: TcpServiceType,
    /// Host clients use for NodePort and LoadBalancer endpoints (defaults to the base domain).
    pub tcp_host: Option<String>,
    /// An instance not Available after this long is ERROR.
    pub provision_timeout: Duration,
    /// How often the reconciler runs; `None` disables the loop.
    pub reconcile_interval: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
}

impl TcpServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpServiceType::ClusterIp => "ClusterIP",
            TcpServiceType::NodePort => "NodePort",
            TcpServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

impl Default for ProvisionSettings {
    fn default() -> Self {
        Self {
            ingress_class: None,
            cert_issuer: None,
            storage_class: None,
            tcp_service_type: TcpServiceType::ClusterIp,
            tcp_host: None,
            provision_timeout: Duration::from_secs(600),
            reconcile_interval: Some(Duration::from_secs(60)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_body_bytes: usize,
    pub introspection: bool,
    /// Fields of a document once every fragment spread is expanded (with multiplicity); bounds
    /// validation and execution cost by the document (MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS).
    pub max_expanded_fields: u64,
    /// Bytes (keys + answers) the public catalog answer cache may hold (MINISPOD_CATALOG_CACHE_BYTES).
    pub catalog_cache_bytes: usize,
    /// Operations in one batched POST (a JSON array) (MINISPOD_GRAPHQL_MAX_BATCH).
    pub max_batch: usize,
}

/// Which documents the gateway runs (README: "Clients").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistedMode {
    /// Any document; a persisted-query hash alone answers PERSISTED_QUERY_NOT_SUPPORTED.
    Off,
    /// Any document, and automatic persisted queries (a hash alone, once registered).
    Apq,
    /// Only the operations of the manifest, by id; administrators may still send documents.
    Only,
}

#[derive(Clone, Debug)]
pub struct PersistedQueriesConfig {
    pub mode: PersistedMode,
    /// Registered APQ documents kept (least recently used go first).
    pub max_entries: usize,
    /// Bytes of registered APQ documents (hash + text) kept.
    pub max_bytes: usize,
    /// An Apollo persisted query manifest loaded at start-up; required by `only`.
    pub manifest: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Login/register attempts per minute for one email address from one client address.
    pub per_email_per_minute: u32,
    /// Login/register attempts per minute from one client IP.
    pub per_ip_per_minute: u32,
    /// Login/register attempts per hour for one email address from all addresses together.
    pub per_email_per_hour: u32,
    /// changePassword attempts per hour for one user.
    pub password_change_per_hour: u32,
    /// Unknown coupon codes one user may try per hour before every coupon lookup is refused.
    pub coupon_guesses_per_hour: u32,
}

fn read_websocket(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = get("MINISPOD_WS_INIT_TIMEOUT_SECS") {
        c.websocket.init_timeout = Duration::from_secs(parse_range("MINISPOD_WS_INIT_TIMEOUT_SECS", &v, 1, 300)?);
    }
    if let Some(v) = get("MINISPOD_WS_MAX_SUBSCRIPTIONS") {
        c.websocket.max_subscriptions = parse_range("MINISPOD_WS_MAX_SUBSCRIPTIONS", &v, 1, 10_000)? as usize;
    }
    if let Some(v) = get("MINISPOD_WS_MAX_CONNECTIONS_PER_USER") {
        c.websocket.max_connections_per_user =
            parse_range("MINISPOD_WS_MAX_CONNECTIONS_PER_USER", &v, 1, 10_000)? as usize;
    }
    Ok(())
}

/// A configuration problem: names the variable so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Default for Config {
    /// Zero-config defaults: SQLite file in the working directory, loopback on port 8080.
    fn default() -> Self {
        Self {
            env: Environment::Development,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://minispod.db?mode=rwc".into(),
            db_connect_timeout: Duration::from_secs(5),
            migrate_on_start: true,
            jwt_secret: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            admin_email: "admin@minispod.local".into(),
            admin_password: None,
            seed_demo: true,
            graphql: GraphqlLimits {
                max_depth: 12,
                max_complexity: 2_000,
                max_aliases: 64,
                max_body_bytes: 1024 * 1024,
                introspection: true,
                max_expanded_fields: 2_000,
                catalog_cache_bytes: 64 * 1024 * 1024,
                max_batch: 20,
            },
            rate_limit: RateLimits {
                per_email_per_minute: 10,
                per_ip_per_minute: 60,
                per_email_per_hour: 1_000,
                password_change_per_hour: 10,
                coupon_guesses_per_hour: 20,
            },
            trust_forwarded_for: false,
            trusted_proxies: 1,
            password_hash_concurrency: 2,
            cors_origins: Vec::new(),
            persisted_queries: PersistedQueriesConfig {
                mode: PersistedMode::Apq,
                max_entries: 10_000,
                max_bytes: 32 * 1024 * 1024,
                manifest: None,
            },
            log_json: false,
            base_domain: None,
            midtrans: MidtransConfig::default(),
            payment_reconcile_interval: Some(Duration::from_secs(60)),
            payment_reconcile_after: Duration::from_secs(5 * 60),
            billing_interval: Some(Duration::from_secs(300)),
            grace_period_days: 7,
            suspension_retention_days: 30,
            kube: KubeSettings {
                source: KubeSource::Infer,
                context: None,
                connect_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(15),
            },
            websocket: WsLimits {
                init_timeout: Duration::from_secs(10),
                max_subscriptions: 50,
                max_connections_per_user: 64,
            },
            provisioning: ProvisionSettings::default(),
            metrics_token: None,
            otlp: OtlpSettings::default(),
            notifications: NotificationSettings::default(),
        }
    }
}

impl Config {
    /// Reads the process environment (after loading `.env`, if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds a config from any key lookup; `from_env` passes the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        read_environment(&get, &mut c)?;
        refuse_placeholders(&get)?;
        if let Some(v) = get("MINISPOD_LISTEN") {
            c.listen = parse("MINISPOD_LISTEN", &v)?;
        }
        if let Some(v) = get("DATABASE_URL") {
            if !(v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://")) {
                return Err(ConfigError {
                    var: "DATABASE_URL",
                    reason: "must start with sqlite:, postgres:// or postgresql://".into(),
                });
            }
            c.database_url = v;
        }
        if let Some(v) = get("MINISPOD_DB_CONNECT_TIMEOUT_SECS") {
            c.db_connect_timeout = Duration::from_secs(parse_range("MINISPOD_DB_CONNECT_TIMEOUT_SECS", &v, 1, 300)?);
        }
        if let Some(v) = get("MINISPOD_MIGRATE_ON_START") {
            c.migrate_on_start = parse_bool("MINISPOD_MIGRATE_ON_START", &v)?;
        }
        if let Some(v) = get("JWT_SECRET") {
            if v.len() < 32 {
                return Err(ConfigError { var: "JWT_SECRET", reason: "must be at least 32 characters".into() });
            }
            c.jwt_secret = Some(SecretString::new(v));
        }
        if let Some(v) = get("MINISPOD_ACCESS_TOKEN_TTL_SECS") {
            c.access_token_ttl = Duration::from_secs(parse_range("MINISPOD_ACCESS_TOKEN_TTL_SECS", &v, 30, 86_400)?);
        }
        if let Some(v) = get("MINISPOD_REFRESH_TOKEN_TTL_DAYS") {
            c.refresh_token_ttl =
                Duration::from_secs(parse_range("MINISPOD_REFRESH_TOKEN_TTL_DAYS", &v, 1, 365)? * 86_400);
        }
        if let Some(v) = get("MINISPOD_ADMIN_EMAIL") {
            c.admin_email = crate::users::Email::parse(&v)
                .map_err(|_| ConfigError { var: "MINISPOD_ADMIN_EMAIL", reason: "not a valid email address".into() })?
                .into_inner();
        }
        if let Some(v) = get("MINISPOD_ADMIN_PASSWORD") {
            if !(8..=128).contains(&v.chars().count()) {
                return Err(ConfigError {
                    var: "MINISPOD_ADMIN_PASSWORD",
                    reason: "must be 8 to 128 characters".into(),
                });
            }
            c.admin_password = Some(SecretString::new(v));
        }
        if let Some(v) = get("MINISPOD_SEED_DEMO") {
            c.seed_demo = parse_bool("MINISPOD_SEED_DEMO", &v)?;
        }
        if let Some(v) = get("MINISPOD_GRAPHQL_MAX_DEPTH") {
            c.graphql.max_depth = parse_range("MINISPOD_GRAPHQL_MAX_DEPTH", &v, 2, 64)? as usize;
        }
        if let Some(v) = get("MINISPOD_GRAPHQL_MAX_COMPLEXITY") {
            c.graphql.max_complexity = parse_range("MINISPOD_GRAPHQL_MAX_COMPLEXITY", &v, 10, 1_000_000)? as usize;
        }
        if let Some(v) = get("MINISPOD_GRAPHQL_MAX_ALIASES") {
            c.graphql.max_aliases = parse_range("MINISPOD_GRAPHQL_MAX_ALIASES", &v, 1, 10_000)? as usize;
        }
        if let Some(v) = get("MINISPOD_MAX_BODY_BYTES") {
            c.graphql.max_body_bytes = parse_range("MINISPOD_MAX_BODY_BYTES", &v, 1024, 64 * 1024 * 1024)? as usize;
        }
        if let Some(v) = get("MINISPOD_INTROSPECTION") {
            c.graphql.introspection = parse_bool("MINISPOD_INTROSPECTION", &v)?;
        }
        if let Some(v) = get("MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS") {
            c.graphql.max_expanded_fields = parse_range("MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS", &v, 10, 1_000_000)?;
        }
        if let Some(v) = get("MINISPOD_CATALOG_CACHE_BYTES") {
            c.graphql.catalog_cache_bytes =
                parse_range("MINISPOD_CATALOG_CACHE_BYTES", &v, 0, 16 * 1024 * 1024 * 1024)? as usize;
        }
        if let Some(v) = get("MINISPOD_RATE_LIMIT_EMAIL_PER_MIN") {
            c.rate_limit.per_email_per_minute =
                parse_range("MINISPOD_RATE_LIMIT_EMAIL_PER_MIN", &v, 1, 10_000_000)? as u32;
        }
        if let Some(v) = get("MINISPOD_RATE_LIMIT_IP_PER_MIN") {
            c.rate_limit.per_ip_per_minute = parse_range("MINISPOD_RATE_LIMIT_IP_PER_MIN", &v, 1, 10_000_000)? as u32;
        }
        if let Some(v) = get("MINISPOD_TRUST_FORWARDED_FOR") {
            c.trust_forwarded_for = parse_bool("MINISPOD_TRUST_FORWARDED_FOR", &v)?;
        }
        read_abuse_limits(&get, &mut c)?;
        if let Some(v) = get("MINISPOD_PASSWORD_HASH_CONCURRENCY") {
            c.password_hash_concurrency = parse_range("MINISPOD_PASSWORD_HASH_CONCURRENCY", &v, 1, 256)? as usize;
        }
        read_transport(&get, &mut c)?;
        if let Some(v) = get("MINISPOD_BASE_DOMAIN") {
            let d = v.trim().trim_matches('.').to_ascii_lowercase();
            let ok = d.contains('.') && d.split('.').all(|l| crate::instances::is_dns_label(l, 63)) && d.len() <= 200;
            if !ok {
                return Err(ConfigError {
                    var: "MINISPOD_BASE_DOMAIN",
                    reason: "must be a DNS domain such as apps.example.com".into(),
                });
            }
            c.base_domain = Some(d);
        }
        if let Some(v) = get("MINISPOD_LOG_FORMAT") {
            c.log_json = match v.as_str() {
                "json" => true,
                "text" => false,
                _ => {
                    return Err(ConfigError { var: "MINISPOD_LOG_FORMAT", reason: "must be json or text".into() });
                }
            };
        }
        read_midtrans(&get, &mut c)?;
        read_websocket(&get, &mut c)?;
        if let Some(v) = get("MINISPOD_KUBE") {
            c.kube.source = match v.trim() {
                "infer" => KubeSource::Infer,
                "off" | "disabled" | "none" => KubeSource::Disabled,
                _ => return Err(ConfigError { var: "MINISPOD_KUBE", reason: "must be infer or off".into() }),
            };
        }
        // An explicit file wins over discovery, but `MINISPOD_KUBE=off` wins over everything.
        if let Some(v) = get("MINISPOD_KUBECONFIG")
            && c.kube.source != KubeSource::Disabled
        {
            c.kube.source = KubeSource::Kubeconfig(PathBuf::from(v));
        }
        if let Some(v) = get("KUBE_CONTEXT") {
            c.kube.context = Some(v.trim().to_string());
        }
        if let Some(v) = get("MINISPOD_KUBE_CONNECT_TIMEOUT_SECS") {
            c.kube.connect_timeout =
                Duration::from_secs(parse_range("MINISPOD_KUBE_CONNECT_TIMEOUT_SECS", &v, 1, 120)?);
        }
        if let Some(v) = get("MINISPOD_KUBE_READ_TIMEOUT_SECS") {
            c.kube.read_timeout = Duration::from_secs(parse_range("MINISPOD_KUBE_READ_TIMEOUT_SECS", &v, 1, 600)?);
        }
        if c.env == Environment::Production && c.jwt_secret.is_none() {
            // A generated secret lives in the database: anyone with a backup could sign tokens.
            return Err(ConfigError {
                var: "JWT_SECRET",
                reason: "required when MINISPOD_ENV=production (at least 32 characters)".into(),
            });
        }
        read_provisioning(&get, &mut c.provisioning)?;
        read_telemetry(&get, &mut c)?;
        Ok(c)
    }

    /// Only the listen address, for `minispod healthcheck`. The probe runs with the server's
    /// environment and must not fail on a setting it never uses (JWT_SECRET in production, say),
    /// so the other variables are not read; the address is parsed exactly as for the server.
    pub fn listen_from_env() -> Result<SocketAddr, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::listen_from_lookup(|k| std::env::var(k).ok())
    }

    pub fn listen_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
        Self::from_lookup(|k| if k == "MINISPOD_LISTEN" { get(k) } else { None }).map(|c| c.listen)
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// MINISPOD_ENV, read first: production changes the defaults that explicit settings override.
fn read_environment(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    c.env = match get("MINISPOD_ENV").as_deref().map(str::trim) {
        None | Some("development") => Environment::Development,
        Some("production") => Environment::Production,
        Some(_) => {
            return Err(ConfigError { var: "MINISPOD_ENV", reason: "must be production or development".into() });
        }
    };
    if c.env == Environment::Production {
        c.seed_demo = false;
        c.graphql.introspection = false;
    }
    Ok(())
}

/// Client address and the slower limits against guessing and lock-outs (issue 9).
fn read_abuse_limits(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = get("MINISPOD_TRUSTED_PROXIES") {
        c.trusted_proxies = parse_range("MINISPOD_TRUSTED_PROXIES", &v, 1, 16)? as usize;
    }
    if let Some(v) = get("MINISPOD_RATE_LIMIT_PASSWORD_CHANGE_PER_HOUR") {
        c.rate_limit.password_change_per_hour =
            parse_range("MINISPOD_RATE_LIMIT_PASSWORD_CHANGE_PER_HOUR", &v, 1, 10_000)? as u32;
    }
    if let Some(v) = get("MINISPOD_RATE_LIMIT_COUPON_GUESSES_PER_HOUR") {
        c.rate_limit.coupon_guesses_per_hour =
            parse_range("MINISPOD_RATE_LIMIT_COUPON_GUESSES_PER_HOUR", &v, 1, 10_000)? as u32;
    }
    // One address may use its whole per-minute budget for an hour without reaching the
    // per-email ceiling; otherwise a single attacker could lock the owner out.
    let floor = u64::from(c.rate_limit.per_email_per_minute) * 60;
    match get("MINISPOD_RATE_LIMIT_EMAIL_PER_HOUR") {
        Some(v) => {
            c.rate_limit.per_email_per_hour =
                parse_range("MINISPOD_RATE_LIMIT_EMAIL_PER_HOUR", &v, 1, 1_000_000_000)? as u32
        }
        None if u64::from(c.rate_limit.per_email_per_hour) <= floor => {
            c.rate_limit.per_email_per_hour = u32::try_from(floor + 1).unwrap_or(u32::MAX)
        }
        None => {}
    }
    if u64::from(c.rate_limit.per_email_per_hour) <= floor {
        return Err(ConfigError {
            var: "MINISPOD_RATE_LIMIT_EMAIL_PER_HOUR",
            reason: "must be more than 60 × MINISPOD_RATE_LIMIT_EMAIL_PER_MIN".into(),
        });
    }
    Ok(())
}

fn read_midtrans(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    let production_env = c.env == Environment::Production;
    let m = &mut c.midtrans;
    if let Some(v) = get("MIDTRANS_SERVER_KEY") {
        // Midtrans' own clients refuse keys with whitespace: they cannot be valid.
        if v.trim() != v || v.contains(char::is_whitespace) {
            return Err(ConfigError { var: "MIDTRANS_SERVER_KEY", reason: "must not contain whitespace".into() });
        }
        m.server_key = Some(SecretString::new(v));
    }
    m.client_key = get("MIDTRANS_CLIENT_KEY");
    if let Some(v) = get("MIDTRANS_PRODUCTION") {
        m.production = parse_bool("MIDTRANS_PRODUCTION", &v)?;
    }
    let (snap, api) = if m.production {
        (MIDTRANS_PRODUCTION_SNAP_URL, MIDTRANS_PRODUCTION_API_URL)
    } else {
        (MIDTRANS_SANDBOX_SNAP_URL, MIDTRANS_SANDBOX_API_URL)
    };
    m.snap_url = get("MIDTRANS_SNAP_URL").map(|u| http_url("MIDTRANS_SNAP_URL", u)).transpose()?.unwrap_or(snap.into());
    m.api_url = get("MIDTRANS_API_URL").map(|u| http_url("MIDTRANS_API_URL", u)).transpose()?.unwrap_or(api.into());
    m.finish_url = get("MIDTRANS_FINISH_URL").map(|u| http_url("MIDTRANS_FINISH_URL", u)).transpose()?;
    if let Some(v) = get("MIDTRANS_EXPIRY_MINUTES") {
        m.expiry_minutes = parse_range("MIDTRANS_EXPIRY_MINUTES", &v, 5, 7 * 24 * 60)? as u32;
    }
    // Default: confirm notifications by the status API in production (either switch).
    m.verify_by_status = match get("MIDTRANS_VERIFY_STATUS") {
        Some(v) => parse_bool("MIDTRANS_VERIFY_STATUS", &v)?,
        None => m.production || production_env,
    };
    if let Some(v) = get("MIDTRANS_TIMEOUT_SECS") {
        m.timeout = Duration::from_secs(parse_range("MIDTRANS_TIMEOUT_SECS", &v, 1, 60)?);
    }
    if let Some(v) = get("MINISPOD_PAYMENT_RECONCILE_SECS") {
        let secs = parse_range("MINISPOD_PAYMENT_RECONCILE_SECS", &v, 0, 86_400)?;
        c.payment_reconcile_interval = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(v) = get("MINISPOD_PAYMENT_RECONCILE_AFTER_SECS") {
        c.payment_reconcile_after =
            Duration::from_secs(parse_range("MINISPOD_PAYMENT_RECONCILE_AFTER_SECS", &v, 0, 86_400)?);
    }
    if let Some(v) = get("MINISPOD_BILLING_INTERVAL_SECS") {
        let secs = parse_range("MINISPOD_BILLING_INTERVAL_SECS", &v, 0, 86_400)?;
        c.billing_interval = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(v) = get("MINISPOD_GRACE_PERIOD_DAYS") {
        c.grace_period_days = parse_range("MINISPOD_GRACE_PERIOD_DAYS", &v, 0, 30)? as i64;
    }
    if let Some(v) = get("MINISPOD_SUSPENSION_RETENTION_DAYS") {
        c.suspension_retention_days = parse_range("MINISPOD_SUSPENSION_RETENTION_DAYS", &v, 0, 365)? as i64;
    }
    read_notifications(get, c)
}

fn read_notifications(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    let n = &mut c.notifications;
    if let Some(v) = get("MINISPOD_LOW_CREDIT_DAYS") {
        n.low_credit_days = parse_range("MINISPOD_LOW_CREDIT_DAYS", &v, 0, 30)? as i64;
    }
    if let Some(v) = get("MINISPOD_GRACE_REMINDER_HOURS") {
        n.grace_reminder_hours = parse_range("MINISPOD_GRACE_REMINDER_HOURS", &v, 0, 720)? as i64;
    }
    // Every mail variable is read (and checked) even without a URL: what is set is validated.
    let from = get("MINISPOD_MAIL_FROM");
    if let Some(from) = &from
        && from.parse::<lettre::message::Mailbox>().is_err()
    {
        return Err(ConfigError {
            var: "MINISPOD_MAIL_FROM",
            reason: "must be an address, optionally with a name: MinisPod <no-reply@example.com>".into(),
        });
    }
    let max_attempts =
        get("MINISPOD_MAIL_MAX_ATTEMPTS").map(|v| parse_range("MINISPOD_MAIL_MAX_ATTEMPTS", &v, 1, 100)).transpose()?;
    let retry_base = get("MINISPOD_MAIL_RETRY_BASE_SECS")
        .map(|v| parse_range("MINISPOD_MAIL_RETRY_BASE_SECS", &v, 1, 3_600))
        .transpose()?;
    let poll =
        get("MINISPOD_MAIL_POLL_SECS").map(|v| parse_range("MINISPOD_MAIL_POLL_SECS", &v, 1, 3_600)).transpose()?;
    let Some(url) = get("MINISPOD_SMTP_URL") else {
        return Ok(());
    };
    let url = url.trim().to_string();
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Err(ConfigError { var: "MINISPOD_SMTP_URL", reason: "must start with smtp:// or smtps://".into() });
    }
    crate::notifications::mailer::check_url(&url).map_err(|reason| ConfigError { var: "MINISPOD_SMTP_URL", reason })?;
    let Some(from) = from else {
        return Err(ConfigError {
            var: "MINISPOD_MAIL_FROM",
            reason: "is required when MINISPOD_SMTP_URL is set".into(),
        });
    };
    let mut m = MailSettings::new(SecretString::new(url), from.trim().to_string());
    if let Some(v) = max_attempts {
        m.max_attempts = v as u32;
    }
    if let Some(v) = retry_base {
        m.retry_base = Duration::from_secs(v);
    }
    if let Some(v) = poll {
        m.poll_interval = Duration::from_secs(v);
    }
    n.mail = Some(m);
    Ok(())
}

/// Client-facing transport: CORS, batching, persisted queries.
fn read_transport(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = get("MINISPOD_CORS_ORIGINS") {
        c.cors_origins = cors_origins(&v)?;
    }
    if let Some(v) = get("MINISPOD_GRAPHQL_MAX_BATCH") {
        c.graphql.max_batch = parse_range("MINISPOD_GRAPHQL_MAX_BATCH", &v, 1, 1_000)? as usize;
    }
    let p = &mut c.persisted_queries;
    if let Some(v) = get("MINISPOD_PERSISTED_QUERIES") {
        p.mode = match v.trim() {
            "off" => PersistedMode::Off,
            "apq" => PersistedMode::Apq,
            "only" => PersistedMode::Only,
            _ => {
                return Err(ConfigError {
                    var: "MINISPOD_PERSISTED_QUERIES",
                    reason: "must be off, apq or only".into(),
                });
            }
        };
    }
    if let Some(v) = get("MINISPOD_APQ_MAX_ENTRIES") {
        p.max_entries = parse_range("MINISPOD_APQ_MAX_ENTRIES", &v, 1, 10_000_000)? as usize;
    }
    if let Some(v) = get("MINISPOD_APQ_MAX_BYTES") {
        p.max_bytes = parse_range("MINISPOD_APQ_MAX_BYTES", &v, 1024, 16 * 1024 * 1024 * 1024)? as usize;
    }
    p.manifest = get("MINISPOD_PERSISTED_QUERIES_MANIFEST").map(|v| PathBuf::from(v.trim()));
    if p.mode == PersistedMode::Only && p.manifest.is_none() {
        return Err(ConfigError {
            var: "MINISPOD_PERSISTED_QUERIES_MANIFEST",
            reason: "required when MINISPOD_PERSISTED_QUERIES=only (an Apollo persisted query manifest)".into(),
        });
    }
    Ok(())
}

/// `*` alone, or a comma-separated list of origins (`scheme://host[:port]`, a trailing slash
/// is dropped; no path, query or credentials).
fn cors_origins(v: &str) -> Result<Vec<String>, ConfigError> {
    let var = "MINISPOD_CORS_ORIGINS";
    let items: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.contains(&"*") {
        if items.len() > 1 {
            return Err(ConfigError { var, reason: "`*` (any origin) cannot be combined with other origins".into() });
        }
        return Ok(vec!["*".into()]);
    }
    items
        .into_iter()
        .map(|item| {
            let origin = item.strip_suffix('/').unwrap_or(item).to_ascii_lowercase();
            let bad =
                || ConfigError { var, reason: format!("{item:?} is not an origin such as https://app.example.com") };
            let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
            // `[v6]` or a name/IPv4 address, then an optional `:port`.
            let (host_ok, port) = match rest.strip_prefix('[') {
                Some(v6) => match v6.split_once(']') {
                    Some((addr, tail)) => (
                        addr.parse::<std::net::Ipv6Addr>().is_ok() && (tail.is_empty() || tail.starts_with(':')),
                        tail.strip_prefix(':'),
                    ),
                    None => (false, None),
                },
                None => {
                    let (host, port) = rest.split_once(':').map_or((rest, None), |(h, p)| (h, Some(p)));
                    let name = |ch: char| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.';
                    (!host.is_empty() && host.chars().all(name), port)
                }
            };
            let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
            if !matches!(scheme, "http" | "https") || !host_ok || !port_ok {
                return Err(bad());
            }
            Ok(origin)
        })
        .collect()
}

fn read_provisioning(get: &impl Fn(&str) -> Option<String>, p: &mut ProvisionSettings) -> Result<(), ConfigError> {
    // Kubernetes object names (DNS subdomains): lower-case, digits, '-' and '.'.
    let object_name = |var: &'static str| -> Result<Option<String>, ConfigError> {
        get(var)
            .map(|v| {
                let v = v.trim().to_string();
                let ok = v.len() <= 253 && v.split('.').all(|l| crate::instances::is_dns_label(l, 63));
                if ok { Ok(v) } else { Err(ConfigError { var, reason: "must be a Kubernetes object name".into() }) }
            })
            .transpose()
    };
    p.ingress_class = object_name("MINISPOD_INGRESS_CLASS")?;
    p.cert_issuer = object_name("MINISPOD_CERT_ISSUER")?;
    p.storage_class = object_name("MINISPOD_STORAGE_CLASS")?;
    p.tcp_host = object_name("MINISPOD_TCP_HOST")?;
    if let Some(v) = get("MINISPOD_TCP_SERVICE_TYPE") {
        p.tcp_service_type = match v.trim() {
            "ClusterIP" => TcpServiceType::ClusterIp,
            "NodePort" => TcpServiceType::NodePort,
            "LoadBalancer" => TcpServiceType::LoadBalancer,
            _ => {
                return Err(ConfigError {
                    var: "MINISPOD_TCP_SERVICE_TYPE",
                    reason: "must be ClusterIP, NodePort or LoadBalancer".into(),
                });
            }
        };
    }
    if let Some(v) = get("MINISPOD_PROVISION_TIMEOUT_SECS") {
        p.provision_timeout = Duration::from_secs(parse_range("MINISPOD_PROVISION_TIMEOUT_SECS", &v, 10, 86_400)?);
    }
    if let Some(v) = get("MINISPOD_RECONCILE_INTERVAL_SECS") {
        let secs = parse_range("MINISPOD_RECONCILE_INTERVAL_SECS", &v, 0, 86_400)?;
        p.reconcile_interval = (secs > 0).then(|| Duration::from_secs(secs));
    }
    Ok(())
}

/// Marks the values of the Secret template (deploy/secret.yaml) that must be replaced.
pub const PLACEHOLDER: &str = "CHANGE-ME";

/// A secret still holding the template's placeholder would start a gateway that signs tokens
/// with a published key or talks to nobody: refuse it by name.
fn refuse_placeholders(get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for var in [
        "DATABASE_URL",
        "JWT_SECRET",
        "MIDTRANS_SERVER_KEY",
        "MIDTRANS_CLIENT_KEY",
        "MINISPOD_ADMIN_PASSWORD",
        "MINISPOD_SMTP_URL",
    ] {
        if get(var).is_some_and(|v| v.contains(PLACEHOLDER)) {
            return Err(ConfigError {
                var,
                reason: format!("still holds the {PLACEHOLDER} placeholder; set a real value"),
            });
        }
    }
    Ok(())
}

/// An http(s) base URL without a trailing slash.
fn http_url(var: &'static str, v: String) -> Result<String, ConfigError> {
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(ConfigError { var, reason: "must be an http(s) URL".into() });
    }
    Ok(v.trim_end_matches('/').to_string())
}

fn parse<T: FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError { var, reason: format!("cannot parse {v:?}") })
}

fn parse_range(var: &'static str, v: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n: u64 = parse(var, v)?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError { var, reason: format!("must be between {min} and {max}") });
    }
    Ok(n)
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError { var, reason: "must be true or false".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn zero_config_defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.is_sqlite());
        assert!(c.jwt_secret.is_none());
    }

    #[test]
    fn the_listen_address_alone_ignores_the_other_settings() {
        let m: HashMap<&str, &str> =
            [("MINISPOD_LISTEN", "0.0.0.0:9090"), ("JWT_SECRET", "short"), ("DATABASE_URL", "mysql://x")].into();
        let listen = Config::listen_from_lookup(|k| m.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(listen.to_string(), "0.0.0.0:9090");
        let e = Config::listen_from_lookup(|k| (k == "MINISPOD_LISTEN").then(|| "nope".to_string())).unwrap_err();
        assert_eq!(e.var, "MINISPOD_LISTEN");
        assert_eq!(Config::listen_from_lookup(|_| None).unwrap().to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = cfg(&[("MINISPOD_LISTEN", "nope")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_LISTEN");
        let e = cfg(&[("JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        let e = cfg(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        let e = cfg(&[("MINISPOD_RATE_LIMIT_IP_PER_MIN", "0")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_RATE_LIMIT_IP_PER_MIN");
    }

    #[test]
    fn abuse_limits_keep_one_address_below_the_email_ceiling() {
        let c = cfg(&[("MINISPOD_TRUSTED_PROXIES", "2")]).unwrap();
        assert_eq!(c.trusted_proxies, 2);
        assert_eq!(c.rate_limit.per_email_per_hour, 1_000);
        // Raising the per-minute budget lifts the default ceiling with it ...
        let c = cfg(&[("MINISPOD_RATE_LIMIT_EMAIL_PER_MIN", "20")]).unwrap();
        assert_eq!(c.rate_limit.per_email_per_hour, 1_201);
        // ... but an explicit ceiling that one address could reach is refused.
        let e = cfg(&[("MINISPOD_RATE_LIMIT_EMAIL_PER_HOUR", "600")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_RATE_LIMIT_EMAIL_PER_HOUR");
        let e = cfg(&[("MINISPOD_TRUSTED_PROXIES", "0")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_TRUSTED_PROXIES");
        let e = cfg(&[("MINISPOD_RATE_LIMIT_PASSWORD_CHANGE_PER_HOUR", "x")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_RATE_LIMIT_PASSWORD_CHANGE_PER_HOUR");
    }

    #[test]
    fn document_and_cache_limits_have_defaults_and_bounds() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.graphql.max_expanded_fields, c.graphql.catalog_cache_bytes), (2_000, 64 * 1024 * 1024));
        let c = cfg(&[("MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS", "500"), ("MINISPOD_CATALOG_CACHE_BYTES", "0")]).unwrap();
        assert_eq!((c.graphql.max_expanded_fields, c.graphql.catalog_cache_bytes), (500, 0));
        let e = cfg(&[("MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS", "5")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_GRAPHQL_MAX_EXPANDED_FIELDS");
        let e = cfg(&[("MINISPOD_CATALOG_CACHE_BYTES", "64MiB")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_CATALOG_CACHE_BYTES");
    }

    #[test]
    fn cors_origins_are_normalised_or_refused_in_one_line() {
        let c = cfg(&[("MINISPOD_CORS_ORIGINS", "https://App.example.com/, http://localhost:5173,http://[::1]:8080")])
            .unwrap();
        assert_eq!(c.cors_origins, ["https://app.example.com", "http://localhost:5173", "http://[::1]:8080"]);
        assert_eq!(cfg(&[("MINISPOD_CORS_ORIGINS", " * ")]).unwrap().cors_origins, ["*"]);
        for bad in [
            "*,https://a.example",
            "app.example.com",
            "https://a.example/path",
            "https://a.example?x=1",
            "ftp://a.example",
            "https://user@a.example",
            "https://a.example:99999",
            "https://a.example:",
            "https://[::1",
        ] {
            let e = cfg(&[("MINISPOD_CORS_ORIGINS", bad)]).unwrap_err();
            assert_eq!(e.var, "MINISPOD_CORS_ORIGINS", "{bad}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn batch_and_persisted_query_settings() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.graphql.max_batch, c.persisted_queries.mode), (20, PersistedMode::Apq));
        let c = cfg(&[
            ("MINISPOD_GRAPHQL_MAX_BATCH", "5"),
            ("MINISPOD_PERSISTED_QUERIES", "only"),
            ("MINISPOD_PERSISTED_QUERIES_MANIFEST", "/etc/minispod/pq.json"),
            ("MINISPOD_APQ_MAX_ENTRIES", "100"),
            ("MINISPOD_APQ_MAX_BYTES", "65536"),
        ])
        .unwrap();
        assert_eq!(c.graphql.max_batch, 5);
        assert_eq!(c.persisted_queries.mode, PersistedMode::Only);
        assert_eq!((c.persisted_queries.max_entries, c.persisted_queries.max_bytes), (100, 65536));
        let e = cfg(&[("MINISPOD_PERSISTED_QUERIES", "only")]).unwrap_err();
        assert_eq!(e.var, "MINISPOD_PERSISTED_QUERIES_MANIFEST");
        assert_eq!(cfg(&[("MINISPOD_PERSISTED_QUERIES", "yes")]).unwrap_err().var, "MINISPOD_PERSISTED_QUERIES");
        assert_eq!(cfg(&[("MINISPOD_GRAPHQL_MAX_BATCH", "0")]).unwrap_err().var, "MINISPOD_GRAPHQL_MAX_BATCH");
    }

    #[test]
    fn websocket_limits() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.websocket.init_timeout, Duration::from_secs(10));
        assert_eq!(c.websocket.max_subscriptions, 50);
        let c = cfg(&[("MINISPOD_WS_INIT_TIMEOUT_SECS", "3"), ("MINISPOD_WS_MAX_CONNECTIONS_PER_USER", "5")]).unwrap();
        assert_eq!((c.websocket.init_timeout.as_secs(), c.websocket.max_connections_per_user), (3, 5));
        for var in
            ["MINISPOD_WS_INIT_TIMEOUT_SECS", "MINISPOD_WS_MAX_SUBSCRIPTIONS", "MINISPOD_WS_MAX_CONNECTIONS_PER_USER"]
        {
            assert_eq!(cfg(&[(var, "0")]).unwrap_err().var, var);
        }
    }

    #[test]
    fn midtrans_urls_follow_the_mode_and_can_be_overridden() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.midtrans.snap_url, MIDTRANS_SANDBOX_SNAP_URL);
        assert!(!c.midtrans.verify_by_status);
        let c = cfg(&[("MIDTRANS_PRODUCTION", "true"), ("MIDTRANS_SERVER_KEY", "Mid-server-x")]).unwrap();
        assert_eq!(c.midtrans.api_url, MIDTRANS_PRODUCTION_API_URL);
        assert!(c.midtrans.verify_by_status, "production confirms by status API by default");
        assert!(!format!("{c:?}").contains("Mid-server-x"));
        let c = cfg(&[("MIDTRANS_SNAP_URL", "http://127.0.0.1:9/snap/v1/"), ("MINISPOD_PAYMENT_RECONCILE_SECS", "0")])
            .unwrap();
        assert_eq!(c.midtrans.snap_url, "http://127.0.0.1:9/snap/v1");
        assert!(c.payment_reconcile_interval.is_none());
    }

    #[test]
    fn billing_settings_have_defaults_and_bounds() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.billing_interval, Some(Duration::from_secs(300)));
        assert_eq!((c.grace_period_days, c.suspension_retention_days), (7, 30));
        let c = cfg(&[
            ("MINISPOD_BILLING_INTERVAL_SECS", "0"),
            ("MINISPOD_GRACE_PERIOD_DAYS", "0"),
            ("MINISPOD_SUSPENSION_RETENTION_DAYS", "90"),
        ])
        .unwrap();
        assert!(c.billing_interval.is_none());
        assert_eq!((c.grace_period_days, c.suspension_retention_days), (0, 90));
        assert_eq!(cfg(&[("MINISPOD_GRACE_PERIOD_DAYS", "31")]).unwrap_err().var, "MINISPOD_GRACE_PERIOD_DAYS");
        assert_eq!(cfg(&[("MIDTRANS_API_URL", "ftp://x")]).unwrap_err().var, "MIDTRANS_API_URL");
    }

    #[test]
    fn kube_source() {
        assert_eq!(cfg(&[]).unwrap().kube.source, KubeSource::Infer);
        let c = cfg(&[("MINISPOD_KUBECONFIG", "/tmp/k"), ("KUBE_CONTEXT", "prod")]).unwrap();
        assert_eq!(c.kube.source, KubeSource::Kubeconfig("/tmp/k".into()));
        assert_eq!(c.kube.context.as_deref(), Some("prod"));
        let c = cfg(&[("MINISPOD_KUBE", "off"), ("MINISPOD_KUBECONFIG", "/tmp/k")]).unwrap();
        assert_eq!(c.kube.source, KubeSource::Disabled);
        assert_eq!(cfg(&[("MINISPOD_KUBE", "maybe")]).unwrap_err().var, "MINISPOD_KUBE");
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    #[test]
    fn development_keeps_the_zero_config_defaults() {
        for c in [cfg(&[]).unwrap(), cfg(&[("MINISPOD_ENV", "development")]).unwrap()] {
            assert_eq!(c.env, Environment::Development);
            assert!(c.jwt_secret.is_none());
            assert!(c.seed_demo && c.graphql.introspection);
            assert!(!c.midtrans.verify_by_status);
        }
        assert_eq!(cfg(&[("MINISPOD_ENV", "prod")]).unwrap_err().var, "MINISPOD_ENV");
    }

    #[test]
    fn production_requires_a_jwt_secret() {
        let e = cfg(&[("MINISPOD_ENV", "production")]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        assert_eq!(cfg(&[("MINISPOD_ENV", "production"), ("JWT_SECRET", "short")]).unwrap_err().var, "JWT_SECRET");
    }

    #[test]
    fn production_defaults_and_explicit_overrides() {
        let c = cfg(&[("MINISPOD_ENV", "production"), ("JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(c.env, Environment::Production);
        assert!(!c.seed_demo, "no demo accounts with public passwords");
        assert!(!c.graphql.introspection);
        assert!(c.midtrans.verify_by_status, "notifications are confirmed by the status API");
        assert_eq!(c.midtrans.api_url, MIDTRANS_SANDBOX_API_URL, "the Midtrans mode is its own switch");
        let c = cfg(&[
            ("MINISPOD_ENV", "production"),
            ("JWT_SECRET", SECRET),
            ("MINISPOD_SEED_DEMO", "true"),
            ("MINISPOD_INTROSPECTION", "true"),
            ("MIDTRANS_VERIFY_STATUS", "false"),
        ])
        .unwrap();
        assert!(c.seed_demo && c.graphql.introspection && !c.midtrans.verify_by_status);
    }

    #[test]
    fn provisioning_settings_have_defaults_and_bounds() {
        let p = cfg(&[]).unwrap().provisioning;
        assert_eq!(
            (p.provision_timeout, p.reconcile_interval),
            (Duration::from_secs(600), Some(Duration::from_secs(60)))
        );
        assert_eq!(p.tcp_service_type, TcpServiceType::ClusterIp);
        assert!(p.ingress_class.is_none() && p.cert_issuer.is_none() && p.storage_class.is_none());
        let p = cfg(&[
            ("MINISPOD_INGRESS_CLASS", "nginx"),
            ("MINISPOD_CERT_ISSUER", "letsencrypt-prod"),
            ("MINISPOD_STORAGE_CLASS", "fast-ssd"),
            ("MINISPOD_TCP_SERVICE_TYPE", "LoadBalancer"),
            ("MINISPOD_TCP_HOST", "db.example.com"),
            ("MINISPOD_PROVISION_TIMEOUT_SECS", "120"),
            ("MINISPOD_RECONCILE_INTERVAL_SECS", "0"),
        ])
        .unwrap()
        .provisioning;
        assert_eq!(p.ingress_class.as_deref(), Some("nginx"));
        assert_eq!(p.tcp_service_type.as_str(), "LoadBalancer");
        assert_eq!(p.provision_timeout, Duration::from_secs(120));
        assert!(p.reconcile_interval.is_none());
        for (var, bad) in [
            ("MINISPOD_INGRESS_CLASS", "Not_Valid"),
            ("MINISPOD_STORAGE_CLASS", "-x"),
            ("MINISPOD_TCP_SERVICE_TYPE", "ExternalName"),
            ("MINISPOD_PROVISION_TIMEOUT_SECS", "5"),
            ("MINISPOD_RECONCILE_INTERVAL_SECS", "x"),
        ] {
            assert_eq!(cfg(&[(var, bad)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn start_up_settings_have_defaults_and_bounds() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.db_connect_timeout, c.migrate_on_start), (Duration::from_secs(5), true));
        let c = cfg(&[("MINISPOD_DB_CONNECT_TIMEOUT_SECS", "30"), ("MINISPOD_MIGRATE_ON_START", "false")]).unwrap();
        assert_eq!((c.db_connect_timeout, c.migrate_on_start), (Duration::from_secs(30), false));
        for (var, bad) in [
            ("MINISPOD_DB_CONNECT_TIMEOUT_SECS", "0"),
            ("MINISPOD_DB_CONNECT_TIMEOUT_SECS", "301"),
            ("MINISPOD_MIGRATE_ON_START", "maybe"),
        ] {
            assert_eq!(cfg(&[(var, bad)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn template_placeholders_are_refused_by_name() {
        let placeholder = format!("{PLACEHOLDER}-0123456789abcdef0123456789abcdef");
        for var in ["JWT_SECRET", "MIDTRANS_SERVER_KEY", "MINISPOD_ADMIN_PASSWORD"] {
            let e = cfg(&[(var, &placeholder)]).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.to_string().contains(PLACEHOLDER), "{e}");
        }
        let url = format!("postgres://minispod:{PLACEHOLDER}@db:5432/minispod");
        assert_eq!(cfg(&[("DATABASE_URL", &url)]).unwrap_err().var, "DATABASE_URL");
    }

    #[test]
    fn secrets_do_not_leak_in_debug() {
        let c = cfg(&[("JWT_SECRET", "0123456789abcdef0123456789abcdef-secret")]).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn mail_is_off_without_an_smtp_url_and_needs_a_from_address_with_one() {
        let c = cfg(&[("MINISPOD_MAIL_FROM", "no-reply@example.com")]).unwrap();
        assert!(c.notifications.mail.is_none());
        let url = ("MINISPOD_SMTP_URL", "smtp://mailer:s3cret-pw@mail.example.com:587");
        assert_eq!(cfg(&[url]).unwrap_err().var, "MINISPOD_MAIL_FROM");
        for bad in ["", "nope", "MinisPod <no-reply>"] {
            assert_eq!(cfg(&[url, ("MINISPOD_MAIL_FROM", bad)]).unwrap_err().var, "MINISPOD_MAIL_FROM", "{bad:?}");
        }
        let c = cfg(&[url, ("MINISPOD_MAIL_FROM", " MinisPod <no-reply@example.com> ")]).unwrap();
        let m = c.notifications.mail.as_ref().unwrap();
        assert_eq!(m.from, "MinisPod <no-reply@example.com>");
        assert_eq!(
            (m.max_attempts, m.retry_base, m.poll_interval),
            (8, Duration::from_secs(30), Duration::from_secs(10))
        );
        assert!(!format!("{c:?}").contains("s3cret-pw"), "the SMTP password stays out of Debug");
    }

    #[test]
    fn smtp_urls_and_retry_settings_are_checked() {
        let from = ("MINISPOD_MAIL_FROM", "no-reply@example.com");
        for ok in ["smtp://mail:25", "smtp://u:p@mail:587?tls=required", "smtps://u:p@mail", " smtp://mail "] {
            assert!(cfg(&[("MINISPOD_SMTP_URL", ok), from]).is_ok(), "{ok}");
        }
        for bad in ["mail.example.com:587", "http://mail", "smtp://", "smtp://mail?tls=sometimes"] {
            assert_eq!(cfg(&[("MINISPOD_SMTP_URL", bad), from]).unwrap_err().var, "MINISPOD_SMTP_URL", "{bad}");
        }
        let url = ("MINISPOD_SMTP_URL", "smtps://mail");
        let c = cfg(&[
            url,
            from,
            ("MINISPOD_MAIL_MAX_ATTEMPTS", "3"),
            ("MINISPOD_MAIL_RETRY_BASE_SECS", "5"),
            ("MINISPOD_MAIL_POLL_SECS", "2"),
        ])
        .unwrap();
        let m = c.notifications.mail.unwrap();
        assert_eq!(
            (m.max_attempts, m.retry_base, m.poll_interval),
            (3, Duration::from_secs(5), Duration::from_secs(2))
        );
        for (var, bad) in [
            ("MINISPOD_MAIL_MAX_ATTEMPTS", "0"),
            ("MINISPOD_MAIL_MAX_ATTEMPTS", "101"),
            ("MINISPOD_MAIL_RETRY_BASE_SECS", "0"),
            ("MINISPOD_MAIL_POLL_SECS", "x"),
        ] {
            assert_eq!(cfg(&[url, from, (var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }
}
