//! Pure functions from (instance, service, plan, settings) to the typed Kubernetes objects that
//! run it. Nothing here talks to the cluster; golden tests pin the output per seeded service.
use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
            Probe, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service,
            ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
            IngressSpec, IngressTLS, ServiceBackendPort,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::entity as instance;
use crate::{
    catalog::{
        ServiceProtocol,
        entity::{plan, service},
    },
    config::{ProvisionSettings, TcpServiceType},
};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "minispod";
pub const APP_NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE_ID: &str = "minispod.io/instance-id";
pub const USER_ID: &str = "minispod.io/user-id";
/// The key of the generated password in the instance's Secret.
pub const PASSWORD_KEY: &str = "generated-password";
const PASSWORD_PLACEHOLDER: &str = "{{generatedPassword}}";
/// Holds the generated password so other variables can embed it as `$(MINISPOD_GENERATED_PASSWORD)`.
const PASSWORD_ENV: &str = "MINISPOD_GENERATED_PASSWORD";
/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Everything the manifests depend on.
pub struct Spec<'a> {
    pub instance: &'a instance::Model,
    pub user_id: i64,
    pub service: &'a service::Model,
    pub plan: &'a plan::Model,
    pub settings: &'a ProvisionSettings,
    pub base_domain: Option<&'a str>,
    pub replicas: i32,
}

/// The objects of one instance, in the order they are applied.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Manifests {
    pub namespace: Namespace,
    pub pvc: Option<PersistentVolumeClaim>,
    pub deployment: Deployment,
    pub service: Service,
    pub ingress: Option<Ingress>,
}

/// The rollout stamp of an instance as it appears in the pod template.
pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn secret_name(inst: &instance::Model) -> String {
    format!("{}-credentials", inst.deployment_name)
}

pub fn pvc_name(inst: &instance::Model) -> String {
    format!("{}-data", inst.deployment_name)
}

/// The labels on every object of an instance.
pub fn labels(inst: &instance::Model, user_id: i64, service_slug: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (APP_NAME.to_string(), service_slug.to_string()),
        (INSTANCE_ID.to_string(), inst.id.to_string()),
        (USER_ID.to_string(), user_id.to_string()),
    ])
}

/// The label selector of everything we manage (`managed-by=minispod`).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// The selector of one instance's objects and pods.
fn instance_selector(inst: &instance::Model) -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string()), (INSTANCE_ID.to_string(), inst.id.to_string())])
}

/// The user's namespace, labelled as ours (orphan cleanup only deletes labelled namespaces).
pub fn namespace(name: &str, user_id: i64) -> Namespace {
    let labels =
        BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string()), (USER_ID.to_string(), user_id.to_string())]);
    Namespace {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(labels), ..Default::default() },
        ..Default::default()
    }
}

fn meta(s: &Spec<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(s.instance.namespace.clone()),
        labels: Some(labels(s.instance, s.user_id, &s.service.slug)),
        ..Default::default()
    }
}

/// Whether the template asks for a generated password.
pub fn needs_password(service: &service::Model) -> bool {
    template(service).iter().any(|(_, v)| v.contains(PASSWORD_PLACEHOLDER))
}

/// The Secret holding the generated password; created once, never re-applied (the password
/// must not change under a running database).
pub fn secret(s: &Spec<'_>, password: &str) -> Secret {
    Secret {
        metadata: meta(s, secret_name(s.instance)),
        string_data: Some(BTreeMap::from([(PASSWORD_KEY.to_string(), password.to_string())])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

fn template(service: &service::Model) -> Vec<(String, String)> {
    service
        .env_template
        .as_ref()
        .and_then(|t| t.as_object())
        .map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}

fn public_url(s: &Spec<'_>) -> String {
    match s.base_domain {
        Some(d) => format!("https://{}.{d}", s.instance.subdomain),
        None => String::new(),
    }
}

/// The container environment: the template with `{{subdomain}}`, `{{baseDomain}}` and
/// `{{publicUrl}}` substituted; `{{generatedPassword}}` comes from the Secret by reference.
pub fn env(s: &Spec<'_>) -> Vec<EnvVar> {
    let from_secret = || {
        Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name(s.instance),
                key: PASSWORD_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        })
    };
    let vars = template(s.service);
    let mut out = Vec::new();
    if vars.iter().any(|(_, v)| v.contains(PASSWORD_PLACEHOLDER) && v != PASSWORD_PLACEHOLDER) {
        // Declared first: Kubernetes expands `$(NAME)` only for variables defined earlier.
        out.push(EnvVar { name: PASSWORD_ENV.into(), value_from: from_secret(), ..Default::default() });
    }
    for (name, raw) in vars {
        if raw == PASSWORD_PLACEHOLDER {
            out.push(EnvVar { name, value_from: from_secret(), ..Default::default() });
            continue;
        }
        let value = raw
            .replace("{{subdomain}}", &s.instance.subdomain)
            .replace("{{baseDomain}}", s.base_domain.unwrap_or_default())
            .replace("{{publicUrl}}", &public_url(s))
            .replace(PASSWORD_PLACEHOLDER, &format!("$({PASSWORD_ENV})"));
        out.push(EnvVar { name, value: Some(value), ..Default::default() });
    }
    out
}

/// The unprivileged user of images known to run without root, and the group that owns their
/// volume. Other images keep their own user (many entrypoints need root to fix ownership).
fn non_root_user(image: &str) -> Option<i64> {
    let repo = image.split(['@']).next().unwrap_or(image);
    let repo = repo.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(repo, |(r, _)| r);
    match repo.trim_start_matches("docker.io/").trim_start_matches("library/") {
        "n8nio/n8n" | "ghost" => Some(1000), // the image's `node` user
        "postgres" => Some(999),             // the image's `postgres` user
        _ => None,
    }
}

fn quantity(s: String) -> Quantity {
    Quantity(s)
}

fn probe(s: &Spec<'_>, initial_delay: i32, period: i32, failures: i32) -> Probe {
    let port = IntOrString::Int(s.service.default_port);
    let (http_get, tcp_socket) = match (&s.service.health_path, s.service.protocol) {
        (Some(path), ServiceProtocol::Http) => {
            (Some(HTTPGetAction { path: Some(path.clone()), port, ..Default::default() }), None)
        }
        _ => (None, Some(TCPSocketAction { port, ..Default::default() })),
    };
    Probe {
        http_get,
        tcp_socket,
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn has_volume(s: &Spec<'_>) -> bool {
    s.plan.storage_gb > 0 && s.service.data_path.is_some()
}

/// The data volume; only when the plan has storage and the service says where data lives.
pub fn pvc(s: &Spec<'_>) -> Option<PersistentVolumeClaim> {
    has_volume(s).then(|| PersistentVolumeClaim {
        metadata: meta(s, pvc_name(s.instance)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: s.settings.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), quantity(format!("{}Gi", s.plan.storage_gb)))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn deployment(s: &Spec<'_>) -> Deployment {
    let inst = s.instance;
    let resources: BTreeMap<String, Quantity> = BTreeMap::from([
        ("cpu".into(), quantity(format!("{}m", s.plan.cpu_milli))),
        ("memory".into(), quantity(format!("{}Mi", s.plan.memory_mb))),
    ]);
    let user = non_root_user(&s.service.docker_image);
    let container = Container {
        name: "app".into(),
        image: Some(s.service.docker_image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("app".into()),
            container_port: s.service.default_port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env(s)).filter(|e| !e.is_empty()),
        // Requests equal limits: the plan's size is what the customer gets, no more, no less.
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..Default::default()
        }),
        readiness_probe: Some(probe(s, 5, 10, 3)),
        liveness_probe: Some(probe(s, 30, 20, 6)),
        volume_mounts: has_volume(s).then(|| {
            vec![VolumeMount {
                name: "data".into(),
                mount_path: s.service.data_path.clone().unwrap_or_default(),
                ..Default::default()
            }]
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_non_root: user.map(|_| true),
            run_as_user: user,
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_labels = labels(inst, s.user_id, &s.service.slug);
    // Every rolling action (provision, retry, start, restart) stamps a new time here, which is
    // what `kubectl rollout restart` does; re-applying the same instance sends the same value,
    // so reconciling never restarts an app by itself.
    let pod_annotations = inst.provision_started_at.map(|t| BTreeMap::from([(RESTARTED_AT.to_string(), stamp(t))]));
    Deployment {
        metadata: meta(s, inst.deployment_name.clone()),
        spec: DeploymentSpec {
            replicas: Some(s.replicas),
            revision_history_limit: Some(2),
            progress_deadline_seconds: Some(i32::try_from(s.settings.provision_timeout.as_secs()).unwrap_or(600)),
            selector: LabelSelector { match_labels: Some(instance_selector(inst)), ..Default::default() },
            // A ReadWriteOnce volume cannot be attached to an old and a new pod at once.
            strategy: has_volume(s)
                .then(|| DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: pod_annotations,
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        fs_group: user,
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    volumes: has_volume(s).then(|| {
                        vec![Volume {
                            name: "data".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: pvc_name(inst),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn service(s: &Spec<'_>) -> Service {
    let type_ = match s.service.protocol {
        ServiceProtocol::Http => TcpServiceType::ClusterIp,
        ServiceProtocol::Tcp => s.settings.tcp_service_type,
    };
    let mut metadata = meta(s, s.instance.deployment_name.clone());
    if type_ == TcpServiceType::LoadBalancer {
        // external-dns publishes the address under the name `endpoint` reports.
        metadata.annotations = tcp_host(s).map(|h| {
            BTreeMap::from([(
                "external-dns.alpha.kubernetes.io/hostname".to_string(),
                format!("{}.{h}", s.instance.subdomain),
            )])
        });
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.as_str().into()),
            selector: Some(instance_selector(s.instance)),
            ports: Some(vec![ServicePort {
                name: Some("app".into()),
                port: s.service.default_port,
                target_port: Some(IntOrString::String("app".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Ingress of an HTTP app at `<subdomain>.<base domain>` with TLS; none for TCP apps or
/// without a base domain.
pub fn ingress(s: &Spec<'_>) -> Option<Ingress> {
    let domain = s.base_domain.filter(|_| s.service.protocol == ServiceProtocol::Http)?;
    let host = format!("{}.{domain}", s.instance.subdomain);
    let mut metadata = meta(s, s.instance.deployment_name.clone());
    metadata.annotations = s
        .settings
        .cert_issuer
        .as_ref()
        .map(|i| BTreeMap::from([("cert-manager.io/cluster-issuer".to_string(), i.clone())]));
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: s.settings.ingress_class.clone(),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![host.clone()]),
                secret_name: Some(format!("{}-tls", s.instance.deployment_name)),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: s.instance.deployment_name.clone(),
                                port: Some(ServiceBackendPort { name: Some("app".into()), ..Default::default() }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn build(s: &Spec<'_>) -> Manifests {
    Manifests {
        namespace: namespace(&s.instance.namespace, s.user_id),
        pvc: pvc(s),
        deployment: deployment(s),
        service: service(s),
        ingress: ingress(s),
    }
}

fn tcp_host(s: &Spec<'_>) -> Option<String> {
    s.settings.tcp_host.clone().or_else(|| s.base_domain.map(str::to_string))
}

/// Where clients of a TCP app connect, given the Service as the cluster returned it (NodePort
/// numbers are assigned by the cluster). HTTP apps have none.
pub fn endpoint(s: &Spec<'_>, applied: &Service) -> Option<String> {
    if s.service.protocol != ServiceProtocol::Tcp {
        return None;
    }
    let port = s.service.default_port;
    let host = || tcp_host(s);
    match s.settings.tcp_service_type {
        TcpServiceType::ClusterIp => {
            Some(format!("{}.{}.svc.cluster.local:{port}", s.instance.deployment_name, s.instance.namespace))
        }
        TcpServiceType::LoadBalancer => host().map(|h| format!("{}.{h}:{port}", s.instance.subdomain)),
        TcpServiceType::NodePort => {
            let node_port = applied.spec.as_ref()?.ports.as_ref()?.first()?.node_port?;
            host().map(|h| format!("{h}:{node_port}"))
        }
    }
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
