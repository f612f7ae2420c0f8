//! The Kubernetes manifests in deploy/, read as the API server and kustomize would read them
//! (no cluster runs in CI): every document is a typed k8s-openapi object with no unknown or
//! misspelt field, and the pieces agree with each other and with the gateway itself.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Mutex,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount},
        networking::v1::Ingress,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use minispod_gateway::config::{Config, Environment, PLACEHOLDER};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::support::TestApp;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The manifests kustomize applies: every YAML file of deploy/ but the kustomization.
fn manifest_files() -> BTreeSet<String> {
    std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && n != "kustomization.yaml")
        .collect()
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"))
}

/// Keys and values of `original` that did not survive a round trip through the typed object:
/// k8s-openapi ignores unknown fields, so a misspelt key would otherwise pass silently.
fn lost_in_round_trip(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => lost_in_round_trip(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost_in_round_trip(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

fn strict<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let obj: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}\n{doc:#}"));
    let mut lost = Vec::new();
    lost_in_round_trip(doc, &serde_json::to_value(&obj).unwrap(), "", &mut lost);
    assert!(lost.is_empty(), "{file}: unknown or misspelt fields: {lost:?}");
    obj
}

#[derive(Debug)]
enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Deployment(Box<Deployment>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    Service(Box<Service>),
    Ingress(Box<Ingress>),
    Job(Box<Job>),
}

fn typed(file: &str, doc: &Value) -> Object {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => Object::Namespace(strict(file, doc)),
        ("v1", "ServiceAccount") => Object::ServiceAccount(strict(file, doc)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => Object::ClusterRole(strict(file, doc)),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => Object::ClusterRoleBinding(strict(file, doc)),
        ("v1", "ConfigMap") => Object::ConfigMap(strict(file, doc)),
        ("v1", "Secret") => Object::Secret(strict(file, doc)),
        ("apps/v1", "Deployment") => Object::Deployment(strict(file, doc)),
        ("policy/v1", "PodDisruptionBudget") => Object::PodDisruptionBudget(strict(file, doc)),
        ("v1", "Service") => Object::Service(strict(file, doc)),
        ("networking.k8s.io/v1", "Ingress") => Object::Ingress(strict(file, doc)),
        ("batch/v1", "Job") => Object::Job(strict(file, doc)),
        other => panic!("{file}: unexpected object {other:?}"),
    }
}

/// Every object of deploy/, checked strictly.
struct Manifests {
    objects: Vec<(String, Object)>,
}

impl Manifests {
    fn load() -> Self {
        let mut objects = Vec::new();
        for file in manifest_files() {
            let docs = documents(&file);
            assert!(!docs.is_empty(), "{file}: no document");
            objects.extend(docs.iter().map(|d| (file.clone(), typed(&file, d))));
        }
        Self { objects }
    }

    fn one<T>(&self, pick: impl Fn(&Object) -> Option<&T>) -> &T {
        let found: Vec<&T> = self.objects.iter().filter_map(|(_, o)| pick(o)).collect();
        assert_eq!(found.len(), 1, "expected exactly one of a kind");
        found[0]
    }

    fn deployment(&self) -> &Deployment {
        self.one(|o| if let Object::Deployment(d) = o { Some(d.as_ref()) } else { None })
    }
    fn job(&self) -> &Job {
        self.one(|o| if let Object::Job(j) = o { Some(j.as_ref()) } else { None })
    }
    fn config_map(&self) -> &ConfigMap {
        self.one(|o| if let Object::ConfigMap(c) = o { Some(c.as_ref()) } else { None })
    }
    fn secret(&self) -> &Secret {
        self.one(|o| if let Object::Secret(s) = o { Some(s.as_ref()) } else { None })
    }
    fn service(&self) -> &Service {
        self.one(|o| if let Object::Service(s) = o { Some(s.as_ref()) } else { None })
    }
    fn ingress(&self) -> &Ingress {
        self.one(|o| if let Object::Ingress(i) = o { Some(i.as_ref()) } else { None })
    }
    fn pdb(&self) -> &PodDisruptionBudget {
        self.one(|o| if let Object::PodDisruptionBudget(p) = o { Some(p.as_ref()) } else { None })
    }
    fn service_account(&self) -> &ServiceAccount {
        self.one(|o| if let Object::ServiceAccount(s) = o { Some(s.as_ref()) } else { None })
    }
    fn cluster_role(&self) -> &ClusterRole {
        self.one(|o| if let Object::ClusterRole(r) = o { Some(r.as_ref()) } else { None })
    }
    fn binding(&self) -> &ClusterRoleBinding {
        self.one(|o| if let Object::ClusterRoleBinding(b) = o { Some(b.as_ref()) } else { None })
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<KustomizeImage>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KustomizeImage {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

fn kustomization() -> Kustomization {
    let text = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("kustomization.yaml: {e}"))
}

/// Every variable `Config` reads: asked with nothing set, it looks up each of them.
fn variables_the_gateway_reads() -> BTreeSet<String> {
    let asked = Mutex::new(BTreeSet::new());
    Config::from_lookup(|k| {
        asked.lock().unwrap().insert(k.to_string());
        None
    })
    .unwrap();
    asked.into_inner().unwrap()
}

fn pod_spec_of_deployment(m: &Manifests) -> &PodSpec {
    m.deployment().spec.template.spec.as_ref().unwrap()
}

fn pod_spec_of_job(m: &Manifests) -> &PodSpec {
    m.job().spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// Secret values as the gateway sees them once an operator replaced the placeholders.
fn filled_in(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .string_data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.replace(PLACEHOLDER, "Filled-In-By-The-Operator")))
        .collect()
}

#[test]
fn every_manifest_is_a_known_object_without_unknown_fields() {
    let m = Manifests::load();
    assert!(m.objects.len() >= 11, "{:?}", m.objects.iter().map(|(f, _)| f).collect::<Vec<_>>());
    // The checker catches what it is for: a misspelt key and a value of the wrong type.
    let doc: Value = serde_saphyr::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {a: b}, ports: [{port: 80, targetPort: http}], sessionAfinity: None}\n",
    )
    .unwrap();
    let typo = std::panic::catch_unwind(|| strict::<Service>("typo.yaml", &doc)).unwrap_err();
    let message = typo.downcast_ref::<String>().unwrap();
    assert!(message.contains(".spec.sessionAfinity"), "{message}");
    let wrong_type: Value = serde_saphyr::from_str("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three, selector: {}, template: {}}\n").unwrap();
    assert!(std::panic::catch_unwind(|| strict::<Deployment>("type.yaml", &wrong_type)).is_err());

    // Namespaced objects live where kustomize puts them (and where `kubectl apply -f` would).
    let namespace = kustomization().namespace.expect("kustomization sets the namespace");
    for (file, o) in &m.objects {
        let ns = match o {
            Object::Namespace(n) => {
                assert_eq!(n.metadata.name.as_deref(), Some(namespace.as_str()), "{file}");
                continue;
            }
            Object::ClusterRole(_) | Object::ClusterRoleBinding(_) => continue,
            Object::ServiceAccount(x) => &x.metadata.namespace,
            Object::ConfigMap(x) => &x.metadata.namespace,
            Object::Secret(x) => &x.metadata.namespace,
            Object::Deployment(x) => &x.metadata.namespace,
            Object::PodDisruptionBudget(x) => &x.metadata.namespace,
            Object::Service(x) => &x.metadata.namespace,
            Object::Ingress(x) => &x.metadata.namespace,
            Object::Job(x) => &x.metadata.namespace,
        };
        assert_eq!(ns.as_deref(), Some(namespace.as_str()), "{file}: {o:?}");
    }
}

#[test]
fn kustomization_lists_every_manifest_and_names_the_image() {
    let k = kustomization();
    assert_eq!((k.api_version.as_str(), k.kind.as_str()), ("kustomize.config.k8s.io/v1beta1", "Kustomization"));
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    assert_eq!(listed.len(), k.resources.len(), "listed twice: {:?}", k.resources);
    assert_eq!(listed, manifest_files(), "kustomization.yaml resources vs the files in deploy/");
    let m = Manifests::load();
    let images: BTreeSet<String> = pod_spec_of_deployment(&m)
        .containers
        .iter()
        .chain(&pod_spec_of_job(&m).containers)
        .map(|c| c.image.clone().unwrap().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(images.len(), 1, "the Job migrates with the gateway's own image: {images:?}");
    assert!(k.images.iter().any(|i| images.contains(&i.name)), "kustomize images: must name {images:?}");
    for i in &k.images {
        assert!(i.new_name.is_some() || i.new_tag.is_some() || i.digest.is_some(), "{i:?}");
    }
}

#[test]
fn config_map_and_secret_hold_only_settings_the_gateway_reads_and_it_accepts_them() {
    let m = Manifests::load();
    let known = variables_the_gateway_reads();
    assert!(known.contains("DATABASE_URL") && known.contains("MINISPOD_DB_CONNECT_TIMEOUT_SECS"), "{known:?}");
    let data = m.config_map().data.clone().unwrap_or_default();
    let secret = m.secret();
    assert!(secret.data.is_none(), "the template uses stringData");
    let secret_data = secret.string_data.clone().unwrap_or_default();
    let explicit_env: Vec<String> = [pod_spec_of_deployment(&m), pod_spec_of_job(&m)]
        .iter()
        .flat_map(|p| &p.containers)
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| e.name.clone())
        .collect();
    for key in data.keys().chain(secret_data.keys()).chain(&explicit_env) {
        assert!(known.contains(key), "{key} is not a variable the gateway reads");
    }
    for needed in ["DATABASE_URL", "JWT_SECRET", "MIDTRANS_SERVER_KEY", "MIDTRANS_CLIENT_KEY"] {
        assert!(secret_data.contains_key(needed), "the Secret template has {needed}");
        assert!(!data.contains_key(needed), "{needed} is a secret, not ConfigMap data");
    }
    // Placeholders are marked, and the gateway refuses to run with one left.
    for (key, value) in &secret_data {
        assert!(value.contains(PLACEHOLDER), "{key}: mark the template value with {PLACEHOLDER}");
    }
    let raw: BTreeMap<String, String> = data.clone().into_iter().chain(secret_data).collect();
    let e = Config::from_lookup(|k| raw.get(k).cloned()).unwrap_err();
    assert!(e.to_string().contains(PLACEHOLDER), "{e}");

    // Filled in, the settings are a valid production configuration.
    let env: BTreeMap<String, String> = data.into_iter().chain(filled_in(secret)).collect();
    let c = Config::from_lookup(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.env, Environment::Production);
    assert!(!c.is_sqlite(), "replicas share one PostgreSQL database");
    assert!(c.midtrans.server_key.is_some() && c.jwt_secret.is_some());
    assert!(c.notifications.mail.is_some(), "notification email is configured");
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    assert_eq!(pod.containers.len(), 1, "one container");
    let c = &pod.containers[0];
    assert_eq!(c.name, name);
    c
}

/// The user the image runs as (`USER uid:gid` of the Dockerfile's final stage).
fn dockerfile_uid() -> i64 {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let user = dockerfile.lines().rev().find_map(|l| l.trim().strip_prefix("USER ")).expect("USER in the Dockerfile");
    user.split(':').next().unwrap().trim().parse().expect("a numeric USER (runAsNonRoot needs one)")
}

#[test]
fn workloads_run_locked_down_as_the_image_user_with_resources() {
    let m = Manifests::load();
    let uid = dockerfile_uid();
    let cm = m.config_map().metadata.name.clone().unwrap();
    let secret = m.secret().metadata.name.clone().unwrap();
    for (what, pod, name) in
        [("Deployment", pod_spec_of_deployment(&m), "gateway"), ("Job", pod_spec_of_job(&m), "migrate")]
    {
        let psc = pod.security_context.as_ref().unwrap_or_else(|| panic!("{what}: pod securityContext"));
        assert_eq!(psc.run_as_non_root, Some(true), "{what}");
        assert_eq!(psc.run_as_user, Some(uid), "{what}: the image's USER");
        assert_eq!(psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"), "{what}");
        let c = container(pod, name);
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{what}: container securityContext"));
        assert_eq!(sc.run_as_non_root, Some(true), "{what}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}");
        assert_eq!(sc.capabilities.as_ref().and_then(|c| c.drop.clone()), Some(vec!["ALL".to_string()]), "{what}");
        assert!(sc.capabilities.as_ref().and_then(|c| c.add.as_ref()).is_none(), "{what}: no capability added");
        assert_eq!(sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"), "{what}");
        let r = c.resources.as_ref().unwrap_or_else(|| panic!("{what}: resources"));
        for res in ["cpu", "memory"] {
            assert!(r.requests.as_ref().is_some_and(|q| q.contains_key(res)), "{what}: requests.{res}");
        }
        assert!(r.limits.as_ref().is_some_and(|q| q.contains_key("memory")), "{what}: limits.memory");
        // Both read the same settings.
        let from: Vec<(Option<String>, Option<String>)> = c
            .env_from
            .iter()
            .flatten()
            .map(|e| (e.config_map_ref.as_ref().map(|r| r.name.clone()), e.secret_ref.as_ref().map(|r| r.name.clone())))
            .collect();
        assert_eq!(from, vec![(Some(cm.clone()), None), (None, Some(secret.clone()))], "{what}: envFrom");
    }
    let d = &m.deployment().spec;
    assert_eq!(d.replicas, Some(3));
    assert_eq!(container(pod_spec_of_deployment(&m), "gateway").args, Some(vec!["serve".to_string()]));
    assert_eq!(
        container(pod_spec_of_job(&m), "migrate").args,
        Some(vec!["migrate".to_string(), "up".to_string()]),
        "the Job runs the migrations"
    );
    assert_eq!(pod_spec_of_job(&m).restart_policy.as_deref(), Some("Never"));
    // The root filesystem is read-only: whatever writes gets a volume (only /tmp here).
    let mounts: Vec<String> = container(pod_spec_of_deployment(&m), "gateway")
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| v.mount_path.clone())
        .collect();
    assert_eq!(mounts, vec!["/tmp".to_string()]);
}

#[tokio::test]
async fn probes_service_and_ingress_reach_the_gateway() {
    let m = Manifests::load();
    let pod = pod_spec_of_deployment(&m);
    let c = container(pod, "gateway");
    let port = c.ports.as_ref().and_then(|p| p.first()).expect("a container port");
    // The container port is the one the gateway listens on.
    let listen = m.config_map().data.as_ref().unwrap()["MINISPOD_LISTEN"].clone();
    let listen_port: i32 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_eq!(port.container_port, listen_port, "containerPort vs MINISPOD_LISTEN={listen}");
    assert!(listen.starts_with("0.0.0.0:"), "reachable from outside the pod: {listen}");
    let port_name = port.name.clone().expect("a named port");
    let points_at_container = |p: &IntOrString| match p {
        IntOrString::Int(n) => *n == port.container_port,
        IntOrString::String(s) => *s == port_name,
    };

    // Probes: liveness on /healthz, readiness on /readyz, on the container port, and the
    // gateway answers 200 on each path.
    let mut paths = Vec::new();
    for (what, probe) in
        [("liveness", &c.liveness_probe), ("readiness", &c.readiness_probe), ("startup", &c.startup_probe)]
    {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{what} probe: httpGet"));
        assert!(points_at_container(&get.port), "{what} probe port {:?}", get.port);
        paths.push((what, get.path.clone().unwrap()));
    }
    assert_eq!(paths[0].1, "/healthz");
    assert_eq!(paths[1].1, "/readyz");
    let app = TestApp::spawn().await;
    for (what, path) in &paths {
        let status = app.http.get(format!("{}{path}", app.url)).send().await.unwrap().status();
        assert_eq!(status, 200, "{what} probe {path}");
    }
    app.stop().await;

    // The Service selects the pods and targets the container port; the PDB selects the same pods.
    let pod_labels = m.deployment().spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    let selects =
        |sel: &BTreeMap<String, String>| !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v));
    let svc = m.service().spec.as_ref().unwrap();
    assert!(selects(svc.selector.as_ref().unwrap()), "Service selector");
    let svc_port = &svc.ports.as_ref().unwrap()[0];
    assert!(points_at_container(svc_port.target_port.as_ref().unwrap()), "Service targetPort");
    let selector = m.deployment().spec.selector.match_labels.clone().unwrap();
    assert!(selects(&selector), "Deployment selector matches its template");
    let pdb = m.pdb().spec.as_ref().unwrap();
    assert!(selects(pdb.selector.as_ref().unwrap().match_labels.as_ref().unwrap()), "PDB selector");
    match pdb.min_available.as_ref().expect("minAvailable") {
        IntOrString::Int(n) => assert!(*n >= 1 && *n < 3, "minAvailable {n} of 3 replicas lets a node drain"),
        other => panic!("minAvailable as a number: {other:?}"),
    }

    // The Ingress sends every path (GraphQL, WebSocket, the Midtrans webhook) to that Service port.
    let svc_name = m.service().metadata.name.clone().unwrap();
    let rules = m.ingress().spec.as_ref().unwrap().rules.clone().unwrap();
    for rule in rules {
        for path in rule.http.unwrap().paths {
            assert_eq!((path.path.as_deref(), path.path_type.as_str()), (Some("/"), "Prefix"));
            let backend = path.backend.service.unwrap();
            assert_eq!(backend.name, svc_name);
            let p = backend.port.unwrap();
            assert!(
                p.name.as_deref() == svc_port.name.as_deref() || p.number == Some(svc_port.port),
                "Ingress backend port {p:?} vs Service port {svc_port:?}"
            );
        }
    }
}

#[test]
fn the_gateway_runs_as_the_service_account_the_rbac_binds() {
    let m = Manifests::load();
    let sa = m.service_account();
    let (sa_name, sa_ns) = (sa.metadata.name.clone().unwrap(), sa.metadata.namespace.clone().unwrap());
    assert_eq!(pod_spec_of_deployment(&m).service_account_name.as_deref(), Some(sa_name.as_str()));
    assert_eq!(m.deployment().metadata.namespace.as_deref(), Some(sa_ns.as_str()));
    let b = m.binding();
    assert_eq!(
        (b.role_ref.kind.as_str(), b.role_ref.name.as_str()),
        ("ClusterRole", m.cluster_role().metadata.name.as_deref().unwrap())
    );
    let subjects = b.subjects.clone().unwrap();
    assert!(
        subjects
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == sa_name && s.namespace.as_deref() == Some(&sa_ns)),
        "{subjects:?}"
    );
    // Least privilege: named resources and verbs only, nothing that grants more rights.
    for rule in m.cluster_role().rules.clone().unwrap() {
        let resources = rule.resources.clone().unwrap_or_default();
        assert!(!resources.iter().any(|r| r == "*") && !rule.verbs.iter().any(|v| v == "*"), "{rule:?}");
        for v in &rule.verbs {
            assert!(!["escalate", "bind", "impersonate", "deletecollection"].contains(&v.as_str()), "{rule:?}");
        }
        assert!(!resources.iter().any(|r| r.starts_with("clusterrole") || r.starts_with("role")), "{rule:?}");
    }
    // The migration Job needs no API access at all.
    assert_eq!(pod_spec_of_job(&m).automount_service_account_token, Some(false));
}
