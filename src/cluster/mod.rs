//! Admin views of the Kubernetes cluster that runs the customers' apps: inventory, live metrics
//! and logs. The gateway runs without a cluster: every cluster field then answers
//! CLUSTER_UNAVAILABLE and the rest of the API is unaffected.
pub mod fanout;
pub mod graphql;
pub mod hub;
pub mod metrics;
pub mod model;
pub mod service;

use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{
    clock::SharedClock,
    config::{KubeSettings, KubeSource},
    error::{AppError, AppResult},
};

/// The cluster connection (if any) and the shared metric pollers.
pub struct Cluster {
    conn: Result<Clients, String>,
    pub pod_metrics: hub::Hub<model::PodMetricsKey, model::PodMetricsSample>,
    pub node_metrics: hub::Hub<u64, model::NodeMetricsSample>,
    /// Metric subscriptions executed once per distinct request for all admin subscribers.
    pub shared: fanout::SharedSubscriptions,
    pub clock: SharedClock,
}

/// Two clients over the same configuration: log follow streams legitimately stay silent for a
/// long time, so only they go without a read timeout.
#[derive(Clone)]
pub struct Clients {
    pub api: kube::Client,
    pub streams: kube::Client,
}

/// What `/readyz` reports for the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    Unavailable,
    NotConfigured,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unavailable => "unavailable",
            Health::NotConfigured => "not_configured",
        }
    }
}

impl Cluster {
    /// Builds the clients without contacting the API server; never fails the gateway.
    pub async fn connect(settings: &KubeSettings, clock: SharedClock, metrics: &crate::telemetry::Metrics) -> Self {
        // The detail (paths, contexts) goes to the log; clients only learn that it failed.
        let conn = match Self::load_config(settings).await {
            Ok(Some(config)) => Self::clients(config, settings, metrics).map_err(|detail| {
                tracing::warn!(%detail, "cannot build the Kubernetes client; running without a cluster");
                "the Kubernetes client could not be built".to_string()
            }),
            Ok(None) => {
                tracing::info!("no Kubernetes cluster configured; cluster fields answer CLUSTER_UNAVAILABLE");
                Err("no cluster is configured".to_string())
            }
            Err(detail) => {
                tracing::warn!(%detail, "cannot load the Kubernetes configuration; running without a cluster");
                Err("the cluster configuration could not be loaded".to_string())
            }
        };
        if let Ok(c) = &conn {
            tracing::info!(default_namespace = %c.api.default_namespace(), "Kubernetes client configured");
        }
        Self {
            conn,
            pod_metrics: Default::default(),
            node_metrics: Default::default(),
            shared: Default::default(),
            clock,
        }
    }

    /// A cluster that is not there (for schema export and tests of the degraded mode).
    pub fn disabled(clock: SharedClock) -> Self {
        Self {
            conn: Err("no cluster is configured".into()),
            pod_metrics: Default::default(),
            node_metrics: Default::default(),
            shared: Default::default(),
            clock,
        }
    }

    async fn load_config(settings: &KubeSettings) -> Result<Option<kube::Config>, String> {
        let options = KubeConfigOptions { context: settings.context.clone(), ..Default::default() };
        match &settings.source {
            KubeSource::Disabled => Ok(None),
            KubeSource::Kubeconfig(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options).await.map(Some).map_err(|e| e.to_string())
            }
            KubeSource::Infer if settings.context.is_some() => {
                kube::Config::from_kubeconfig(&options).await.map(Some).map_err(|e| e.to_string())
            }
            // No kubeconfig and not in a pod is the ordinary "no cluster" case, not an error.
            KubeSource::Infer => match kube::Config::infer().await {
                Ok(c) => Ok(Some(c)),
                Err(e) => {
                    tracing::debug!(error = %e, "no kubeconfig and not in a cluster");
                    Ok(None)
                }
            },
        }
    }

    fn clients(
        mut config: kube::Config,
        settings: &KubeSettings,
        metrics: &crate::telemetry::Metrics,
    ) -> Result<Clients, String> {
        config.connect_timeout = Some(settings.connect_timeout);
        config.write_timeout = Some(settings.read_timeout);
        // Retries would multiply upstream requests per tick and slow down failing fields.
        config.default_retry = false;
        let mut streaming = config.clone();
        streaming.read_timeout = None;
        config.read_timeout = Some(settings.read_timeout);
        // Every request through either client is timed and counted (`telemetry::upstream`).
        let layer = crate::telemetry::upstream::KubeMetricsLayer(metrics.clone());
        let build = |config: kube::Config| {
            kube::client::ClientBuilder::try_from(config)
                .map(|b| b.with_layer(&layer).build())
                .map_err(|e| e.to_string())
        };
        let api = build(config)?;
        let streams = build(streaming)?;
        Ok(Clients { api, streams })
    }

    /// The clients, or CLUSTER_UNAVAILABLE when none is configured.
    pub fn clients_or_unavailable(&self) -> AppResult<&Clients> {
        self.conn.as_ref().map_err(|reason| AppError::ClusterUnavailable(reason.clone()))
    }

    /// Asks the API server for its version, bounded by `timeout`.
    pub async fn health(&self, timeout: std::time::Duration) -> Health {
        let Ok(clients) = &self.conn else {
            return Health::NotConfigured;
        };
        match tokio::time::timeout(timeout, clients.api.apiserver_version()).await {
            Ok(Ok(_)) => Health::Ok,
            _ => Health::Unavailable,
        }
    }
}

/// Kubernetes errors as the API shows them: a missing object is NOT_FOUND, anything else means
/// the cluster could not answer. The detail is logged, not sent (it may name hosts or users).
pub fn kube_error(what: &'static str) -> impl Fn(kube::Error) -> AppError {
    move |e| match &e {
        kube::Error::Api(status) if status.code == 404 => AppError::NotFound(what),
        kube::Error::Api(status) => {
            tracing::warn!(code = status.code, message = %status.message, what, "Kubernetes API refused");
            AppError::ClusterUnavailable(format!("the API server refused to list {what} ({})", status.code))
        }
        _ => {
            tracing::warn!(error = %e, what, "Kubernetes API unreachable");
            AppError::ClusterUnavailable("the API server did not answer".into())
        }
    }
}

/// Shared handle kept in `AppState`.
pub type SharedCluster = Arc<Cluster>;
