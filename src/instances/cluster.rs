//! The only code that talks to the API server about instances: server-side apply (field
//! manager `minispod`, forced), namespace first; scale; rolling restart; delete and list by
//! label. Callers never hold a database transaction across these calls.
use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret, Service},
    networking::v1::Ingress,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::manifests::{self, Manifests};

pub const FIELD_MANAGER: &str = "minispod";

/// A failed cluster call, in words fit for `lastError` (no hosts, no tokens).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// The API server could not be reached or answered 5xx: try again later.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// The API server refused the request (4xx): trying again will not help by itself.
    #[error("the cluster refused {what}: {message}")]
    Refused { what: String, code: u16, message: String },
}

impl ClusterError {
    fn from_kube(what: impl Into<String>, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code < 500 => {
                ClusterError::Refused { what: what.into(), code: s.code, message: s.message.clone() }
            }
            kube::Error::Api(s) => ClusterError::Unavailable(format!("API server error {}", s.code)),
            other => {
                tracing::debug!(error = %other, "Kubernetes API unreachable");
                ClusterError::Unavailable("the API server did not answer".into())
            }
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Refused { code: 404, .. })
    }
}

pub type ClusterResult<T> = Result<T, ClusterError>;

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(api: &Api<K>, obj: &K) -> ClusterResult<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(obj))
        .await
        .map_err(|e| ClusterError::from_kube(format!("{} {name}", K::kind(&Default::default())), e))
}

/// Applies every object of an instance, the namespace first (a real API server answers 404
/// for objects in a missing namespace). Returns the Service as the cluster has it (NodePort
/// numbers are assigned there).
pub async fn apply_all(client: &Client, m: &Manifests, secret: Option<&Secret>) -> ClusterResult<Service> {
    apply(&Api::<Namespace>::all(client.clone()), &m.namespace).await?;
    // Before the Deployment: a pod referring to a missing Secret fails to start.
    if let Some(secret) = secret {
        ensure_secret(client, secret).await?;
    }
    let ns = m.deployment.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(pvc) = &m.pvc {
        apply(&Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns), pvc).await?;
    }
    apply(&Api::<Deployment>::namespaced(client.clone(), ns), &m.deployment).await?;
    let service = apply(&Api::<Service>::namespaced(client.clone(), ns), &m.service).await?;
    if let Some(ingress) = &m.ingress {
        apply(&Api::<Ingress>::namespaced(client.clone(), ns), ingress).await?;
    }
    Ok(service)
}

/// Creates the Secret with the generated password unless it exists: a password must never
/// change under a running database, so this is a create that tolerates AlreadyExists.
pub async fn ensure_secret(client: &Client, secret: &Secret) -> ClusterResult<()> {
    let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
    let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match Api::<Secret>::namespaced(client.clone(), ns).create(&pp, secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(ClusterError::from_kube("the credentials Secret", e)),
    }
}

/// The generated password of an instance, if its Secret exists.
pub async fn read_password(client: &Client, ns: &str, secret_name: &str) -> ClusterResult<Option<String>> {
    let secret = match Api::<Secret>::namespaced(client.clone(), ns).get_opt(secret_name).await {
        Ok(s) => s,
        Err(e) => return Err(ClusterError::from_kube("reading the credentials", e)),
    };
    Ok(secret.and_then(|s| {
        let key = manifests::PASSWORD_KEY;
        s.data
            .and_then(|d| d.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok()))
            .or_else(|| s.string_data.and_then(|d| d.get(key).cloned()))
    }))
}

/// Sets the replica count through the scale subresource.
pub async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) -> ClusterResult<()> {
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::from_kube(format!("scaling {name}"), e))
}

/// What `kubectl rollout restart` does: a new pod-template annotation starts a rolling update.
pub async fn restart(client: &Client, ns: &str, name: &str, at: chrono::DateTime<chrono::Utc>) -> ClusterResult<()> {
    let patch = serde_json::json!({ "spec": { "template": { "metadata": { "annotations": {
        manifests::RESTARTED_AT: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    } } } } });
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::from_kube(format!("restarting {name}"), e))
}

/// The label selector of one instance's objects and pods.
pub fn instance_selector(instance_id: i64) -> String {
    format!("{},{}={instance_id}", manifests::managed_selector(), manifests::INSTANCE_ID)
}

async fn delete_labelled<K>(client: &Client, ns: &str, selector: &str) -> ClusterResult<usize>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    let what = K::plural(&Default::default()).to_string();
    let list = match api.list_metadata(&ListParams::default().labels(selector)).await {
        Ok(l) => l,
        // The namespace is gone, and so is everything in it.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0),
        Err(e) => return Err(ClusterError::from_kube(format!("listing {what}"), e)),
    };
    let mut deleted = 0;
    // One delete per object: not every resource offers deletecollection (Services do not).
    for obj in list.items {
        match api.delete(&obj.name_any(), &DeleteParams::background()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ClusterError::from_kube(format!("deleting {what}"), e)),
        }
    }
    Ok(deleted)
}

/// Deletes every object of an instance, its volume and credentials included. Returns how many
/// objects were deleted (0: nothing was left).
pub async fn delete_instance(client: &Client, ns: &str, instance_id: i64) -> ClusterResult<usize> {
    let sel = instance_selector(instance_id);
    Ok(delete_labelled::<Ingress>(client, ns, &sel).await?
        + delete_labelled::<Service>(client, ns, &sel).await?
        + delete_labelled::<Deployment>(client, ns, &sel).await?
        + delete_labelled::<PersistentVolumeClaim>(client, ns, &sel).await?
        + delete_labelled::<Secret>(client, ns, &sel).await?)
}

/// Deletes one object by kind and name (orphan cleanup).
pub async fn delete_object(client: &Client, kind: Kind, ns: Option<&str>, name: &str) -> ClusterResult<()> {
    let dp = DeleteParams::background();
    let ns = ns.unwrap_or_default();
    let res = match kind {
        Kind::Namespace => Api::<Namespace>::all(client.clone()).delete(name, &dp).await.map(|_| ()),
        Kind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns).delete(name, &dp).await.map(|_| ()),
        Kind::Service => Api::<Service>::namespaced(client.clone(), ns).delete(name, &dp).await.map(|_| ()),
        Kind::Ingress => Api::<Ingress>::namespaced(client.clone(), ns).delete(name, &dp).await.map(|_| ()),
        Kind::Pvc => Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns).delete(name, &dp).await.map(|_| ()),
        Kind::Secret => Api::<Secret>::namespaced(client.clone(), ns).delete(name, &dp).await.map(|_| ()),
    };
    match res {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::from_kube(format!("deleting {name}"), e)),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Deployment,
    Service,
    Ingress,
    Pvc,
    Secret,
}

/// One of our objects as a list returned it: enough to converge without a GET per instance.
#[derive(Clone, Debug)]
pub struct Observed {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Deployments only.
    pub deployment: Option<Deployment>,
}

impl Observed {
    pub fn instance_id(&self) -> Option<i64> {
        self.labels.get(manifests::INSTANCE_ID).and_then(|v| v.parse().ok())
    }
    pub fn user_id(&self) -> Option<i64> {
        self.labels.get(manifests::USER_ID).and_then(|v| v.parse().ok())
    }
}

async fn list_kind<K>(client: &Client, kind: Kind) -> ClusterResult<Vec<Observed>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Serialize,
    K::DynamicType: Default,
{
    let lp = ListParams::default().labels(&manifests::managed_selector());
    let list = Api::<K>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| ClusterError::from_kube(format!("listing {}", K::plural(&Default::default())), e))?;
    Ok(list
        .items
        .into_iter()
        .map(|o| {
            let deployment = (kind == Kind::Deployment)
                .then(|| serde_json::to_value(&o).ok().and_then(|v| serde_json::from_value(v).ok()))
                .flatten();
            Observed {
                kind,
                namespace: o.meta().namespace.clone(),
                name: o.name_any(),
                labels: o.labels().clone(),
                deployment,
            }
        })
        .collect())
}

/// Every object carrying our managed-by label: one list call per kind, whatever the number of
/// instances. Objects without our label are never returned, so they are never touched.
pub async fn list_managed(client: &Client) -> ClusterResult<Vec<Observed>> {
    let (ns, dep, svc, ing, pvc, sec) = tokio::try_join!(
        list_kind::<Namespace>(client, Kind::Namespace),
        list_kind::<Deployment>(client, Kind::Deployment),
        list_kind::<Service>(client, Kind::Service),
        list_kind::<Ingress>(client, Kind::Ingress),
        list_kind::<PersistentVolumeClaim>(client, Kind::Pvc),
        list_kind::<Secret>(client, Kind::Secret),
    )?;
    Ok([ns, dep, svc, ing, pvc, sec].into_iter().flatten().collect())
}

/// One Deployment, if it exists.
pub async fn get_deployment(client: &Client, ns: &str, name: &str) -> ClusterResult<Option<Deployment>> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::from_kube(format!("reading {name}"), e))
}

/// The pods of one instance (status detail for errors and logs).
pub async fn instance_pods(client: &Client, ns: &str, instance_id: i64) -> ClusterResult<Vec<Pod>> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&instance_selector(instance_id)))
        .await
        .map(|l| l.items)
        .map_err(|e| ClusterError::from_kube("listing pods", e))
}
