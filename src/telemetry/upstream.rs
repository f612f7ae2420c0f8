//! Calls the gateway makes to others: a tower layer for the Kubernetes clients (every API call,
//! watches and log streams included, until their response headers), and the outcome labels
//! shared with the Midtrans client.
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::http::{Request, Response};
use tower::{Layer, Service};

use super::Metrics;

/// `2xx`, `3xx`, `4xx`, `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `verb resource` of a Kubernetes API path, e.g. `list pods`, `get deployments`,
/// `watch pods`, `get pods/log`; names and namespaces never become labels.
pub fn kube_operation(method: &str, path: &str, query: Option<&str>) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/{group}/{version}/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return format!("{} other", method.to_ascii_lowercase()),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("discovery".to_string(), false),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "other",
    };
    format!("{verb} {resource}")
}

/// Records every request of the Kubernetes client it wraps.
#[derive(Clone)]
pub struct KubeMetricsLayer(pub Metrics);

impl<S> Layer<S> for KubeMetricsLayer {
    type Service = KubeMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        KubeMetrics { inner, metrics: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct KubeMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> Service<Request<B>> for KubeMetrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let operation = kube_operation(req.method().as_str(), req.uri().path(), req.uri().query());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let outcome = match &result {
                Ok(resp) => status_class(resp.status().as_u16()),
                Err(e) => {
                    tracing::error!(operation, error = %e, "Kubernetes API request failed");
                    "error"
                }
            };
            if let Ok(resp) = &result
                && resp.status().is_server_error()
            {
                tracing::error!(operation, status = resp.status().as_u16(), "Kubernetes API server error");
            }
            metrics.upstream("kubernetes", &operation, outcome, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::kube_operation;

    #[test]
    fn kube_paths_become_bounded_operations() {
        assert_eq!(kube_operation("GET", "/api/v1/namespaces/ns-1/pods", None), "list pods");
        assert_eq!(kube_operation("GET", "/api/v1/pods", Some("labelSelector=a%3Db")), "list pods");
        assert_eq!(kube_operation("GET", "/api/v1/namespaces/ns/pods", Some("watch=true&x=1")), "watch pods");
        assert_eq!(kube_operation("GET", "/api/v1/namespaces/ns/pods/p-1/log", Some("follow=true")), "get pods/log");
        assert_eq!(kube_operation("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web", None), "patch deployments");
        assert_eq!(kube_operation("GET", "/api/v1/namespaces", None), "list namespaces");
        assert_eq!(kube_operation("GET", "/api/v1/namespaces/ns-1", None), "get namespaces");
        assert_eq!(kube_operation("DELETE", "/api/v1/namespaces/ns/secrets", None), "deletecollection secrets");
        assert_eq!(kube_operation("GET", "/apis/metrics.k8s.io/v1beta1/nodes", None), "list nodes");
        assert_eq!(kube_operation("GET", "/version", None), "get other");
    }
}
