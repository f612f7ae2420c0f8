//! App instances owned by subscriptions, run on Kubernetes: the row records the intent, the
//! cluster is written by server-side apply, a watch reports the outcome, and a reconciler
//! converges whatever is left half done.
pub mod cluster;
pub mod entity;
pub mod graphql;
pub mod hub;
pub mod lifecycle;
pub mod live;
pub mod manifests;
pub mod observe;
pub mod reconcile;
pub mod service;

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum InstanceStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "PROVISIONING")]
    Provisioning,
    #[sea_orm(string_value = "RUNNING")]
    Running,
    #[sea_orm(string_value = "STOPPING")]
    Stopping,
    #[sea_orm(string_value = "STOPPED")]
    Stopped,
    #[sea_orm(string_value = "STARTING")]
    Starting,
    #[sea_orm(string_value = "RESTARTING")]
    Restarting,
    #[sea_orm(string_value = "ERROR")]
    Error,
    #[sea_orm(string_value = "TERMINATING")]
    Terminating,
    #[sea_orm(string_value = "TERMINATED")]
    Terminated,
}

/// A DNS label: lower-case letters, digits and '-', not starting or ending with '-'.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Turns a free-form name into a DNS label prefix (for derived instance names).
pub fn dns_slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Starts the instance watch and the periodic reconciler (a first pass right away converges
/// whatever a previous process left half done).
pub fn spawn(state: &crate::state::AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut jobs: Vec<_> = observe::spawn(state).into_iter().collect();
    if state.cluster.clients_or_unavailable().is_ok() {
        let s = state.clone();
        jobs.push(tokio::spawn(async move { reconcile_logged(&s).await }));
        if let Some(interval) = state.config.provisioning.reconcile_interval {
            let s = state.clone();
            jobs.push(crate::jobs::every(interval, move || {
                let s = s.clone();
                async move { reconcile_logged(&s).await }
            }));
        }
    }
    jobs
}

async fn reconcile_logged(state: &crate::state::AppState) {
    match crate::jobs::billing::run(state, crate::jobs::billing::BillingJob::ReconcileInstances).await {
        Ok(r) if r.succeeded + r.failed > 0 => {
            tracing::info!(changed = r.succeeded, failed = r.failed, "instances reconciled")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = ?e, "instance reconcile pass failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("my-blog-1", 40));
        for bad in ["", "-x", "x-", "UPPER", "sp ace", "dot.ted", &"a".repeat(41)] {
            assert!(!is_dns_label(bad, 40), "{bad}");
        }
        assert_eq!(dns_slug("Ghost Blog!! 2", 40), "ghost-blog-2");
        assert_eq!(dns_slug("N8N Automation", 5), "n8n-a");
    }
}
