//! Golden manifests per seeded service (regenerate with `MINISPOD_UPDATE_GOLDEN=1`; review the
//! diff), and the rules behind them.
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::catalog::PlanType;

fn seeded_service(slug: &str) -> (service::Model, Vec<plan::Model>) {
    let seed: Value = serde_json::from_str(include_str!("../../seed/catalog.json")).unwrap();
    let s = seed["services"].as_array().unwrap().iter().find(|s| s["slug"] == slug).unwrap().clone();
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let service = service::Model {
        id: 7,
        category_id: 1,
        name: s["name"].as_str().unwrap().into(),
        slug: slug.into(),
        description: None,
        long_description: None,
        icon: None,
        version: s["version"].as_str().unwrap().into(),
        docker_image: s["dockerImage"].as_str().unwrap().into(),
        default_port: s["defaultPort"].as_i64().unwrap() as i32,
        env_template: Some(s["envTemplate"].clone()),
        tags: json!([]),
        documentation: None,
        is_active: true,
        is_public: true,
        is_featured: false,
        sort_order: 0,
        created_at: at,
        updated_at: at,
        data_path: s["dataPath"].as_str().map(str::to_string),
        protocol: serde_json::from_value(s["protocol"].clone()).unwrap(),
        health_path: s["healthPath"].as_str().map(str::to_string),
    };
    let plans = s["plans"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| plan::Model {
            id: 70 + i as i64,
            service_id: 7,
            name: p["name"].as_str().unwrap().into(),
            plan_type: serde_json::from_value::<PlanType>(p["planType"].clone()).unwrap(),
            description: None,
            monthly_price: p["monthlyPrice"].as_i64().unwrap(),
            cpu_milli: p["cpuMilli"].as_i64().unwrap() as i32,
            memory_mb: p["memoryMb"].as_i64().unwrap() as i32,
            storage_gb: p["storageGb"].as_i64().unwrap() as i32,
            bandwidth_gb: 0,
            total_quota: 10,
            used_quota: 0,
            features: json!([]),
            max_instances_per_user: 1,
            is_active: true,
            is_popular: false,
            sort_order: 0,
            created_at: at,
            updated_at: at,
        })
        .collect();
    (service, plans)
}

fn instance(subdomain: &str) -> instance::Model {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    instance::Model {
        id: 42,
        subscription_id: 9,
        name: "app".into(),
        subdomain: subdomain.into(),
        status: crate::instances::InstanceStatus::Pending,
        health_status: None,
        last_error: None,
        namespace: "minispod-u5".into(),
        deployment_name: subdomain.into(),
        public_url: None,
        last_started_at: None,
        last_stopped_at: None,
        created_at: at,
        updated_at: at,
        version: 0,
        owner_stopped: false,
        endpoint: None,
        provision_started_at: None,
        status_changed_at: None,
    }
}

fn settings() -> ProvisionSettings {
    ProvisionSettings {
        ingress_class: Some("nginx".into()),
        cert_issuer: Some("letsencrypt-prod".into()),
        storage_class: Some("fast-ssd".into()),
        ..Default::default()
    }
}

fn golden(slug: &str, subdomain: &str) -> Value {
    let (service, plans) = seeded_service(slug);
    let inst = instance(subdomain);
    let settings = settings();
    let spec = Spec {
        instance: &inst,
        user_id: 5,
        service: &service,
        plan: &plans[0],
        settings: &settings,
        base_domain: Some("apps.example.com"),
        replicas: 1,
    };
    let mut v = serde_json::to_value(build(&spec)).unwrap();
    if needs_password(&service) {
        v["secret"] = serde_json::to_value(secret(&spec, "s3cret")).unwrap();
    }
    v
}

fn check_golden(slug: &str, subdomain: &str) -> Value {
    let actual = golden(slug, subdomain);
    let path = format!("{}/src/instances/golden/{slug}.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var("MINISPOD_UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(actual, expected, "{slug}: manifests differ from {path}");
    actual
}

#[test]
fn golden_n8n() {
    let v = check_golden("n8n-automation", "flows-1a2b3c4d");
    let c = &v["deployment"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "n8nio/n8n:latest");
    assert_eq!(c["resources"]["limits"], json!({ "cpu": "200m", "memory": "256Mi" }));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({ "path": "/healthz", "port": 5678 }));
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/home/node/.n8n");
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    assert!(env.contains(&&json!({ "name": "N8N_HOST", "value": "flows-1a2b3c4d.apps.example.com" })));
    assert_eq!(v["ingress"]["spec"]["rules"][0]["host"], "flows-1a2b3c4d.apps.example.com");
    assert_eq!(v["ingress"]["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "letsencrypt-prod");
    assert_eq!(v["pvc"]["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert!(v.get("secret").is_none(), "no generated password, no Secret");
}

#[test]
fn golden_ghost() {
    let v = check_golden("ghost-blog", "blog-00ff00ff");
    let c = &v["deployment"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["tcpSocket"], json!({ "port": 2368 }), "no health path: TCP probe");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/lib/ghost/content");
    assert_eq!(v["ingress"]["spec"]["ingressClassName"], "nginx");
}

#[test]
fn golden_postgresql() {
    let v = check_golden("postgresql", "db-12345678");
    assert!(v["ingress"].is_null(), "TCP apps get no Ingress");
    assert_eq!(v["service"]["spec"]["type"], "ClusterIP");
    let c = &v["deployment"]["spec"]["template"]["spec"]["containers"][0];
    let env = c["env"].as_array().unwrap();
    let pw = env.iter().find(|e| e["name"] == "POSTGRES_PASSWORD").unwrap();
    assert_eq!(
        pw["valueFrom"]["secretKeyRef"],
        json!({ "name": "db-12345678-credentials", "key": PASSWORD_KEY, "optional": false })
    );
    assert!(pw.get("value").is_none(), "the password is never in the Deployment");
    assert!(env.contains(&json!({ "name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata" })));
    assert_eq!(v["secret"]["stringData"][PASSWORD_KEY], "s3cret");
    assert_eq!(v["deployment"]["spec"]["strategy"]["type"], "Recreate");
}

fn spec_parts(slug: &str) -> (service::Model, Vec<plan::Model>, instance::Model) {
    let (s, p) = seeded_service(slug);
    (s, p, instance("x-00000000"))
}

#[test]
fn every_object_carries_the_labels_and_the_service_selects_the_pods() {
    for slug in ["n8n-automation", "ghost-blog", "postgresql"] {
        let v = golden(slug, "x-00000000");
        let want = json!({
            "app.kubernetes.io/managed-by": "minispod", "app.kubernetes.io/name": slug,
            "minispod.io/instance-id": "42", "minispod.io/user-id": "5"
        });
        for kind in ["pvc", "deployment", "service", "ingress", "secret"] {
            if !v[kind].is_null() {
                assert_eq!(v[kind]["metadata"]["labels"], want, "{slug} {kind}");
            }
        }
        assert_eq!(v["namespace"]["metadata"]["labels"]["app.kubernetes.io/managed-by"], "minispod");
        let pod_labels = v["deployment"]["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
        for sel in [&v["service"]["spec"]["selector"], &v["deployment"]["spec"]["selector"]["matchLabels"]] {
            for (k, val) in sel.as_object().unwrap() {
                assert_eq!(pod_labels.get(k), Some(val), "{slug}: selector {k} matches the pods");
            }
        }
    }
}

#[test]
fn embedded_passwords_are_expanded_by_kubernetes_not_by_us() {
    let (mut svc, plans, inst) = spec_parts("postgresql");
    svc.env_template =
        Some(json!({ "DATABASE_URL": "postgres://app:{{generatedPassword}}@localhost/app", "URL": "{{publicUrl}}/x" }));
    let settings = settings();
    let spec = Spec {
        instance: &inst,
        user_id: 5,
        service: &svc,
        plan: &plans[0],
        settings: &settings,
        base_domain: Some("a.io"),
        replicas: 1,
    };
    let env = serde_json::to_value(super::env(&spec)).unwrap();
    assert_eq!(env[0]["name"], PASSWORD_ENV, "declared before its users");
    assert_eq!(env[0]["valueFrom"]["secretKeyRef"]["key"], PASSWORD_KEY);
    assert_eq!(
        env[1],
        json!({ "name": "DATABASE_URL", "value": "postgres://app:$(MINISPOD_GENERATED_PASSWORD)@localhost/app" })
    );
    assert_eq!(env[2], json!({ "name": "URL", "value": "https://x-00000000.a.io/x" }));
}

#[test]
fn plans_size_the_pod_and_the_volume() {
    let (svc, plans, inst) = spec_parts("n8n-automation");
    let settings = ProvisionSettings::default();
    let pro = plans.iter().find(|p| p.plan_type == PlanType::Pro).unwrap();
    let spec = Spec {
        instance: &inst,
        user_id: 5,
        service: &svc,
        plan: pro,
        settings: &settings,
        base_domain: None,
        replicas: 0,
    };
    let m = build(&spec);
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["deployment"]["spec"]["replicas"], 0);
    assert_eq!(
        v["deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
        json!({ "cpu": "1000m", "memory": "1024Mi" })
    );
    assert_eq!(v["pvc"]["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert!(v["pvc"]["spec"].get("storageClassName").is_none(), "default storage class");
    assert!(m.ingress.is_none(), "no base domain, no Ingress host");
    let mut free = pro.clone();
    free.storage_gb = 0;
    let spec = Spec { plan: &free, ..spec };
    assert!(build(&spec).pvc.is_none());
    assert!(
        serde_json::to_value(build(&spec).deployment).unwrap()["spec"]["template"]["spec"].get("volumes").is_none()
    );
}

#[test]
fn tcp_endpoints_follow_the_service_type() {
    let (svc, plans, inst) = spec_parts("postgresql");
    let settings = ProvisionSettings::default();
    let spec = Spec {
        instance: &inst,
        user_id: 5,
        service: &svc,
        plan: &plans[0],
        settings: &settings,
        base_domain: Some("apps.example.com"),
        replicas: 1,
    };
    let applied = service(&spec);
    assert_eq!(endpoint(&spec, &applied).as_deref(), Some("x-00000000.minispod-u5.svc.cluster.local:5432"));
    let node_port = ProvisionSettings {
        tcp_service_type: TcpServiceType::NodePort,
        tcp_host: Some("nodes.example.com".into()),
        ..Default::default()
    };
    let spec = Spec { settings: &node_port, ..spec };
    let mut applied = service(&spec);
    assert_eq!(applied.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));
    assert_eq!(endpoint(&spec, &applied), None, "unknown until the cluster assigns the port");
    applied.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31234);
    assert_eq!(endpoint(&spec, &applied).as_deref(), Some("nodes.example.com:31234"));
    let (http, _, _) = spec_parts("ghost-blog");
    let spec = Spec { service: &http, ..spec };
    assert_eq!(endpoint(&spec, &applied), None);
    assert_eq!(serde_json::to_value(service(&spec)).unwrap()["spec"]["type"], "ClusterIP", "HTTP apps stay internal");
}
