//! Provisioning (issue 10): catalog fields that say how a service runs, and the instance
//! lifecycle on the fake API server.
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const SERVICE_RUN: &str =
    "query($s: String!) { service(slug: $s) { protocol dataPath healthPath defaultPort envTemplate } }";

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    app
}

async fn how_it_runs(app: &TestApp, token: &str, slug: &str) -> Value {
    app.gql_ok(Some(token), SERVICE_RUN, json!({ "s": slug })).await["service"].clone()
}

#[tokio::test]
async fn seeded_services_say_how_they_run() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    let n8n = how_it_runs(&app, &admin.token, "n8n-automation").await;
    assert_eq!(
        (&n8n["protocol"], &n8n["dataPath"], &n8n["defaultPort"]),
        (&json!("HTTP"), &json!("/home/node/.n8n"), &json!(5678))
    );
    let ghost = how_it_runs(&app, &admin.token, "ghost-blog").await;
    assert_eq!(
        (&ghost["protocol"], &ghost["dataPath"], &ghost["defaultPort"]),
        (&json!("HTTP"), &json!("/var/lib/ghost/content"), &json!(2368))
    );
    let pg = how_it_runs(&app, &admin.token, "postgresql").await;
    assert_eq!(
        (&pg["protocol"], &pg["dataPath"], &pg["defaultPort"]),
        (&json!("TCP"), &json!("/var/lib/postgresql/data"), &json!(5432))
    );
    assert_eq!(pg["healthPath"], Value::Null, "TCP probes for PostgreSQL");
    // PGDATA in a sub-directory: initdb refuses a mount point that holds lost+found.
    assert_eq!(pg["envTemplate"]["PGDATA"], "/var/lib/postgresql/data/pgdata");

    // The protocol is public; where the data lives is the operator's business.
    let user = app.register("Ana").await;
    let v = app.gql(Some(&user.token), "{ service(slug: \"postgresql\") { protocol dataPath } }", json!({})).await;
    assert_eq!(v["data"]["service"]["protocol"], "TCP");
    assert_eq!(error_code(&v), "FORBIDDEN");
}

#[tokio::test]
async fn seeding_fills_run_fields_of_an_older_catalog_once() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    // A catalog seeded before services knew how they run.
    app.state
        .db
        .conn
        .execute_raw(Statement::from_string(
            app.state.db.conn.get_database_backend(),
            "UPDATE services SET data_path = NULL, protocol = 'HTTP', health_path = NULL",
        ))
        .await
        .unwrap();
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let pg = how_it_runs(&app, &admin.token, "postgresql").await;
    assert_eq!((&pg["protocol"], &pg["dataPath"]), (&json!("TCP"), &json!("/var/lib/postgresql/data")));

    // An administrator's choice survives the next seeding.
    let id =
        app.gql_ok(Some(&admin.token), "{ service(slug: \"ghost-blog\") { id } }", json!({})).await["service"]["id"]
            .clone();
    app.gql_ok(
        Some(&admin.token),
        "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { id } }",
        json!({ "id": id, "i": { "dataPath": "/srv/ghost", "healthPath": "/ghost/api/admin/site/" } }),
    )
    .await;
    minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
    let ghost = how_it_runs(&app, &admin.token, "ghost-blog").await;
    assert_eq!((&ghost["dataPath"], &ghost["healthPath"]), (&json!("/srv/ghost"), &json!("/ghost/api/admin/site/")));
}

#[tokio::test]
async fn run_fields_are_validated_and_named() {
    let app = seeded().await;
    let admin = app.login_admin().await;
    let id =
        app.gql_ok(Some(&admin.token), "{ service(slug: \"ghost-blog\") { id } }", json!({})).await["service"]["id"]
            .clone();
    for (input, field) in [
        (json!({ "dataPath": "relative/dir" }), "dataPath"),
        (json!({ "dataPath": "/var/../etc" }), "dataPath"),
        (json!({ "healthPath": "healthz" }), "healthPath"),
        (json!({ "protocol": "UDP" }), ""),
    ] {
        let v = app
            .gql(
                Some(&admin.token),
                "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { id } }",
                json!({ "id": id, "i": input }),
            )
            .await;
        assert!(v["errors"].is_array(), "{input} accepted: {v}");
        if !field.is_empty() {
            assert_eq!(error_code(&v), "BAD_USER_INPUT");
            assert_eq!(v["errors"][0]["extensions"]["field"], field);
        }
    }
    // Clearing the health path switches the probes back to TCP.
    let v = app
        .gql_ok(
            Some(&admin.token),
            "mutation($id: ID!, $i: UpdateServiceInput!) { updateService(id: $id, input: $i) { healthPath protocol } }",
            json!({ "id": id, "i": { "healthPath": null, "protocol": "TCP" } }),
        )
        .await;
    assert_eq!(v["updateService"], json!({ "healthPath": null, "protocol": "TCP" }));
}

// ------------------------------------------------------------------ cluster.rs against the fake

pub(crate) mod cluster_calls {
    use std::time::Duration;

    use minispod_gateway::{
        catalog::{
            ServiceProtocol,
            entity::{plan, service},
        },
        config::ProvisionSettings,
        instances::{
            InstanceStatus,
            cluster::{self, ClusterError, Kind},
            entity as instance,
            manifests::{self, Spec},
        },
    };
    use serde_json::json;

    use crate::support::fake_k8s_workloads::FakeWorkloads;

    /// A client configured like the gateway's (no automatic retries).
    async fn client(fake: &FakeWorkloads) -> kube::Client {
        minispod_gateway::app::init_crypto();
        let kc = kube::config::Kubeconfig::read_from(&fake.kubeconfig).unwrap();
        let mut config = kube::config::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }

    fn models(id: i64, storage_gb: i32) -> (instance::Model, service::Model, plan::Model) {
        let at = chrono::Utc::now();
        let inst = instance::Model {
            id,
            subscription_id: 1,
            name: "db".into(),
            subdomain: format!("db-{id}"),
            status: InstanceStatus::Pending,
            health_status: None,
            last_error: None,
            namespace: "minispod-u3".into(),
            deployment_name: format!("db-{id}"),
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
        };
        let svc = service::Model {
            id: 1,
            category_id: 1,
            name: "PostgreSQL".into(),
            slug: "postgresql".into(),
            description: None,
            long_description: None,
            icon: None,
            version: "15".into(),
            docker_image: "postgres:15-alpine".into(),
            default_port: 5432,
            env_template: Some(json!({ "POSTGRES_PASSWORD": "{{generatedPassword}}" })),
            tags: json!([]),
            documentation: None,
            is_active: true,
            is_public: true,
            is_featured: false,
            sort_order: 0,
            created_at: at,
            updated_at: at,
            data_path: Some("/var/lib/postgresql/data".into()),
            protocol: ServiceProtocol::Tcp,
            health_path: None,
        };
        let plan = plan::Model {
            id: 1,
            service_id: 1,
            name: "Basic".into(),
            plan_type: minispod_gateway::catalog::PlanType::Basic,
            description: None,
            monthly_price: 0,
            cpu_milli: 100,
            memory_mb: 256,
            storage_gb,
            bandwidth_gb: 0,
            total_quota: 1,
            used_quota: 0,
            features: json!([]),
            max_instances_per_user: 1,
            is_active: true,
            is_popular: false,
            sort_order: 0,
            created_at: at,
            updated_at: at,
        };
        (inst, svc, plan)
    }

    /// Polls (with a deadline) until `cond` holds.
    pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn apply_scale_restart_and_delete_by_label() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let c = client(&fake).await;
        let (inst, svc, plan) = models(7, 5);
        let settings = ProvisionSettings::default();
        let spec = Spec {
            instance: &inst,
            user_id: 3,
            service: &svc,
            plan: &plan,
            settings: &settings,
            base_domain: None,
            replicas: 1,
        };
        let m = manifests::build(&spec);

        // A namespace that does not exist yet is created first.
        cluster::apply_all(&c, &m, None).await.unwrap();
        let applies: Vec<_> = fake.requests().into_iter().filter(|r| r.method == "PATCH").collect();
        assert_eq!(applies[0].path, "/api/v1/namespaces/minispod-u3");
        assert!(applies.iter().all(|r| r.query.contains("fieldManager=minispod") && r.query.contains("force=true")));
        let d = fake.get("deployments", "minispod-u3", "db-7").unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "postgres:15-alpine");
        assert!(fake.get("persistentvolumeclaims", "minispod-u3", "db-7-data").is_some());
        wait_for("Available", || {
            fake.get("deployments", "minispod-u3", "db-7").unwrap()["status"]["availableReplicas"] == 1
        })
        .await;

        // Applying the same objects again changes nothing (no new generation).
        cluster::apply_all(&c, &m, None).await.unwrap();
        assert_eq!(fake.get("deployments", "minispod-u3", "db-7").unwrap()["metadata"]["generation"], 1);

        // The Secret is created once; a second password does not replace the first.
        cluster::ensure_secret(&c, &manifests::secret(&spec, "first")).await.unwrap();
        cluster::ensure_secret(&c, &manifests::secret(&spec, "second")).await.unwrap();
        let pw = cluster::read_password(&c, "minispod-u3", &manifests::secret_name(&inst)).await.unwrap();
        assert_eq!(pw.as_deref(), Some("first"));

        cluster::scale(&c, "minispod-u3", "db-7", 0).await.unwrap();
        assert_eq!(fake.get("deployments", "minispod-u3", "db-7").unwrap()["spec"]["replicas"], 0);
        wait_for("pods gone", || fake.list("pods").is_empty()).await;
        cluster::restart(&c, "minispod-u3", "db-7", chrono::Utc::now()).await.unwrap();
        let d = fake.get("deployments", "minispod-u3", "db-7").unwrap();
        assert!(d["spec"]["template"]["metadata"]["annotations"][manifests::RESTARTED_AT].is_string());

        // A foreign object in the same namespace survives the instance's deletion.
        fake.put(
            "services",
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "theirs", "namespace": "minispod-u3" } }),
        );
        let deleted = cluster::delete_instance(&c, "minispod-u3", 7).await.unwrap();
        assert_eq!(deleted, 4, "deployment, service, volume and secret");
        for (kind, name) in [
            ("deployments", "db-7"),
            ("services", "db-7"),
            ("persistentvolumeclaims", "db-7-data"),
            ("secrets", "db-7-credentials"),
        ] {
            assert!(fake.get(kind, "minispod-u3", name).is_none(), "{kind} {name}");
        }
        assert!(fake.get("services", "minispod-u3", "theirs").is_some());
        assert_eq!(cluster::delete_instance(&c, "minispod-u3", 7).await.unwrap(), 0, "idempotent");
    }

    #[tokio::test]
    async fn the_fake_refuses_what_a_real_api_server_refuses() {
        let fake = FakeWorkloads::start(Duration::from_millis(10)).await;
        minispod_gateway::app::init_crypto();
        let http = reqwest::Client::new();
        let dep = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "x" }, "spec": {} });
        let apply = |path: &str, query: &str| {
            http.patch(format!("{}{path}{query}", fake.url))
                .bearer_auth("fake-token")
                .header("content-type", "application/apply-patch+yaml")
                .body(dep.to_string())
        };
        let path = "/apis/apps/v1/namespaces/nowhere/deployments/x";
        let r = apply(path, "").send().await.unwrap();
        assert_eq!(r.status(), 400, "fieldManager is required");
        let r = apply(path, "?fieldManager=t").send().await.unwrap();
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["message"], "namespaces \"nowhere\" not found");
        let r = apply("/apis/apps/v1/namespaces/default/deployments/y", "?fieldManager=t").send().await.unwrap();
        assert_eq!(r.status(), 400, "name must match the URL");
        let r = apply("/apis/apps/v1/namespaces/default/deployments/x", "?fieldManager=t").send().await.unwrap();
        assert_eq!(r.status(), 201, "created");
        let r = apply("/apis/apps/v1/namespaces/default/deployments/x", "?fieldManager=t").send().await.unwrap();
        assert_eq!(r.status(), 200, "updated");
        let r = http.get(format!("{}/api/v1/namespaces", fake.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "a token is required");
        let r = http
            .get(format!("{}/api/v1/pods?labelSelector=%3Dx", fake.url))
            .bearer_auth("fake-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "bad selector");
    }

    #[tokio::test]
    async fn list_and_watch_follow_resource_versions_and_selectors() {
        let fake = FakeWorkloads::start(Duration::from_millis(10)).await;
        minispod_gateway::app::init_crypto();
        let http = reqwest::Client::new();
        let get = |q: &str| http.get(format!("{}/api/v1/namespaces{q}", fake.url)).bearer_auth("fake-token");
        let list: serde_json::Value = get("").send().await.unwrap().json().await.unwrap();
        let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        for (name, team) in [("a", "x"), ("b", "y"), ("c", "x")] {
            fake.put(
                "namespaces",
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": { "team": team } } }),
            );
        }
        fake.remove("namespaces", "", "a");
        let q = format!("?watch=true&resourceVersion={rv}&timeoutSeconds=1&labelSelector=team%20in%20(x)");
        let body = get(&q).send().await.unwrap().text().await.unwrap();
        let events: Vec<(String, String)> = body
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| (e["type"].as_str().unwrap().into(), e["object"]["metadata"]["name"].as_str().unwrap().into()))
            .collect();
        let want: Vec<(String, String)> = [("ADDED", "a"), ("ADDED", "c"), ("DELETED", "a")]
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect();
        assert_eq!(events, want);
        let list: serde_json::Value = get("?labelSelector=team!%3Dx,team").send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "only b");
    }

    #[tokio::test]
    async fn failing_images_and_an_unavailable_cluster() {
        let fake = FakeWorkloads::start(Duration::from_millis(20)).await;
        fake.fail_image("postgres:15-alpine");
        let c = client(&fake).await;
        let (inst, svc, plan) = models(9, 0);
        let settings = ProvisionSettings::default();
        let spec = Spec {
            instance: &inst,
            user_id: 3,
            service: &svc,
            plan: &plan,
            settings: &settings,
            base_domain: None,
            replicas: 1,
        };
        cluster::apply_all(&c, &manifests::build(&spec), None).await.unwrap();
        wait_for("ProgressDeadlineExceeded", || {
            let d = fake.get("deployments", "minispod-u3", "db-9").unwrap();
            d["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "ProgressDeadlineExceeded"))
        })
        .await;
        let pods = cluster::instance_pods(&c, "minispod-u3", 9).await.unwrap();
        let waiting = pods[0].status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].state.as_ref().unwrap();
        assert_eq!(waiting.waiting.as_ref().unwrap().reason.as_deref(), Some("ImagePullBackOff"));

        let managed = cluster::list_managed(&c).await.unwrap();
        assert!(managed.iter().any(|o| o.kind == Kind::Deployment && o.instance_id() == Some(9)));
        assert!(managed.iter().all(|o| o.labels.get(manifests::MANAGED_BY).map(String::as_str) == Some("minispod")));

        fake.set_unavailable(true);
        let e = cluster::apply_all(&c, &manifests::build(&spec), None).await.unwrap_err();
        assert!(matches!(e, ClusterError::Unavailable(_)), "{e:?}");
        fake.set_unavailable(false);
        cluster::apply_all(&c, &manifests::build(&spec), None).await.unwrap();
    }
}

// ------------------------------------------------------------------ end to end on the fake

pub(crate) mod end_to_end {
    use std::{sync::Arc, time::Duration};

    use minispod_gateway::config::KubeSource;
    use serde_json::{Value, json};

    use crate::{
        helpers::{balance, give_credit},
        support::{Session, TestApp, TestDb, error_code, fake_k8s_workloads::FakeWorkloads},
    };

    pub(crate) const INSTANCE: &str =
        "query($id: ID!) { instance(id: $id) { id status lastError endpoint namespace deploymentName subdomain } }";

    pub(crate) async fn gateway_on(db: Arc<TestDb>, fake: &FakeWorkloads) -> TestApp {
        let kubeconfig = fake.kubeconfig.clone();
        TestApp::spawn_on(db, move |c| {
            c.kube.source = KubeSource::Kubeconfig(kubeconfig);
            c.base_domain = Some("apps.test".into());
            c.provisioning.ingress_class = Some("nginx".into());
            c.provisioning.reconcile_interval = None; // passes run when a test asks
        })
        .await
    }

    pub(crate) async fn gateway(fake: &FakeWorkloads) -> TestApp {
        let app = gateway_on(Arc::new(TestDb::create().await), fake).await;
        minispod_gateway::seed::seed_catalog(&app.state).await.unwrap();
        app
    }

    pub(crate) async fn plan_id(app: &TestApp, slug: &str, plan_type: &str) -> String {
        let v = app
            .gql_ok(None, "query($s: String!) { service(slug: $s) { plans { id planType } } }", json!({ "s": slug }))
            .await;
        let plans = v["service"]["plans"].as_array().unwrap();
        plans.iter().find(|p| p["planType"] == plan_type).unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Subscribes and returns (subscription id, instance id).
    pub(crate) async fn subscribe(app: &TestApp, user: &Session, slug: &str, plan_type: &str) -> (String, String) {
        let plan = plan_id(app, slug, plan_type).await;
        let v = app
            .gql_ok(
                Some(&user.token),
                "mutation($p: ID!) { subscribe(input: { planId: $p }) { id instances { id } } }",
                json!({ "p": plan }),
            )
            .await;
        let sub = v["subscribe"]["id"].as_str().unwrap().to_string();
        (sub, v["subscribe"]["instances"][0]["id"].as_str().unwrap().to_string())
    }

    pub(crate) async fn instance(app: &TestApp, token: &str, id: &str) -> Value {
        app.gql_ok(Some(token), INSTANCE, json!({ "id": id })).await["instance"].clone()
    }

    /// Polls until the instance has `status` (a deadline, not a sleep, decides failure).
    pub(crate) async fn wait_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let i = instance(app, token, id).await;
            if i["status"] == status {
                return i;
            }
            assert!(std::time::Instant::now() < deadline, "instance never became {status}: {i}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) async fn act(app: &TestApp, token: &str, mutation: &str, id: &str) -> Value {
        app.gql(
            Some(token),
            &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id status lastError }} }}"),
            json!({ "id": id }),
        )
        .await
    }

    pub(crate) async fn reconcile(app: &TestApp) -> Value {
        let admin = app.login_admin().await;
        app.gql_ok(
            Some(&admin.token),
            "mutation { runBillingJob(job: RECONCILE_INSTANCES) { processed succeeded failed details } }",
            json!({}),
        )
        .await["runBillingJob"]
            .clone()
    }

    #[tokio::test]
    async fn subscribe_runs_the_app_and_the_lifecycle_follows_the_owner() {
        let fake = FakeWorkloads::start(Duration::from_millis(100)).await;
        let app = gateway(&fake).await;
        let ana = app.register("Ana").await;
        let (sub, id) = subscribe(&app, &ana, "n8n-automation", "FREE").await;
        let i = wait_status(&app, &ana.token, &id, "RUNNING").await;
        let (ns, name) = (i["namespace"].as_str().unwrap(), i["deploymentName"].as_str().unwrap());

        // What was applied: image, resources, probes, labels, selectors, Ingress, volume.
        let d = fake.get("deployments", ns, name).expect("deployment applied");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "n8nio/n8n:latest");
        assert_eq!(c["resources"]["limits"], json!({ "cpu": "200m", "memory": "256Mi" }));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/home/node/.n8n");
        let labels = &d["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "minispod");
        assert_eq!(labels["minispod.io/instance-id"], id.as_str());
        assert_eq!(labels["minispod.io/user-id"], ana.user_id.as_str());
        let svc = fake.get("services", ns, name).expect("service applied");
        let pod_labels = d["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
        for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
            assert_eq!(pod_labels.get(k), Some(v), "Service selects the pods by {k}");
        }
        let ing = fake.get("ingresses", ns, name).expect("ingress applied");
        let host = format!("{}.apps.test", i["subdomain"].as_str().unwrap());
        assert_eq!(ing["spec"]["rules"][0]["host"], host.as_str());
        assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], name);
        assert_eq!(ing["spec"]["ingressClassName"], "nginx");
        let pvc = fake.get("persistentvolumeclaims", ns, &format!("{name}-data")).expect("volume applied");
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "2Gi");

        // Stop keeps the data, start scales back, restart rolls the pods.
        let v = act(&app, &ana.token, "stopInstance", &id).await;
        assert_eq!(v["data"]["stopInstance"]["status"], "STOPPING", "{v}");
        wait_status(&app, &ana.token, &id, "STOPPED").await;
        assert_eq!(fake.get("deployments", ns, name).unwrap()["spec"]["replicas"], 0);
        assert!(fake.get("persistentvolumeclaims", ns, &format!("{name}-data")).is_some(), "data kept");
        let v = act(&app, &ana.token, "stopInstance", &id).await;
        assert_eq!(error_code(&v), "CONFLICT");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("STOPPED"), "{v}");
        act(&app, &ana.token, "startInstance", &id).await;
        wait_status(&app, &ana.token, &id, "RUNNING").await;
        assert_eq!(fake.get("deployments", ns, name).unwrap()["spec"]["replicas"], 1);
        let before = fake.get("deployments", ns, name).unwrap()["spec"]["template"]["metadata"]["annotations"].clone();
        let v = act(&app, &ana.token, "restartInstance", &id).await;
        assert_eq!(v["data"]["restartInstance"]["status"], "RESTARTING", "{v}");
        wait_status(&app, &ana.token, &id, "RUNNING").await;
        let after = &fake.get("deployments", ns, name).unwrap()["spec"]["template"]["metadata"]["annotations"];
        assert_ne!(&before, after, "a new kubectl.kubernetes.io/restartedAt");
        assert!(after["kubectl.kubernetes.io/restartedAt"].is_string());

        // Cancel deletes every object of the instance, the volume included.
        app.gql_ok(
            Some(&ana.token),
            "mutation($id: ID!) { cancelSubscription(id: $id) { status } }",
            json!({ "id": sub }),
        )
        .await;
        wait_status(&app, &ana.token, &id, "TERMINATED").await;
        for kind in ["deployments", "services", "ingresses", "persistentvolumeclaims", "secrets", "pods"] {
            let left: Vec<Value> = fake
                .list(kind)
                .into_iter()
                .filter(|o| o["metadata"]["labels"]["minispod.io/instance-id"] == id.as_str())
                .collect();
            assert!(left.is_empty(), "{kind} left: {left:?}");
        }
    }

    #[tokio::test]
    async fn an_image_that_never_pulls_is_an_error_and_retry_recovers() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        fake.fail_image("ghost:5-alpine");
        let app = gateway(&fake).await;
        let bo = app.register("Bo").await;
        let (_, id) = subscribe(&app, &bo, "ghost-blog", "FREE").await;
        let i = wait_status(&app, &bo.token, &id, "ERROR").await;
        let reason = i["lastError"].as_str().unwrap();
        assert!(reason.contains("ImagePullBackOff") || reason.contains("ProgressDeadlineExceeded"), "{reason}");

        // Nothing else is legal from ERROR but retry (and stop).
        assert_eq!(error_code(&act(&app, &bo.token, "restartInstance", &id).await), "CONFLICT");
        let admin = app.login_admin().await;
        let svc = app.gql_ok(Some(&admin.token), "{ service(slug: \"ghost-blog\") { id } }", json!({})).await;
        app.gql_ok(
            Some(&admin.token),
            "mutation($id: ID!) { updateService(id: $id, input: { dockerImage: \"ghost:5.100-alpine\" }) { id } }",
            json!({ "id": svc["service"]["id"] }),
        )
        .await;
        let v = act(&app, &bo.token, "retryProvisioning", &id).await;
        assert_eq!(v["data"]["retryProvisioning"]["status"], "PROVISIONING", "{v}");
        let i = wait_status(&app, &bo.token, &id, "RUNNING").await;
        assert_eq!(i["lastError"], Value::Null);
        let d =
            fake.get("deployments", i["namespace"].as_str().unwrap(), i["deploymentName"].as_str().unwrap()).unwrap();
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "ghost:5.100-alpine");
    }

    #[tokio::test]
    async fn a_cluster_outage_at_subscribe_charges_once_and_provisions_later() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let admin = app.login_admin().await;
        let cy = app.register("Cy").await;
        give_credit(&app, &admin, &cy, 100_000).await;
        fake.set_unavailable(true);
        let (_, id) = subscribe(&app, &cy, "postgresql", "BASIC").await;
        assert_eq!(balance(&app, &cy).await, 75_000, "charged once");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let pending = loop {
            let i = instance(&app, &cy.token, &id).await;
            if !i["lastError"].is_null() {
                break i;
            }
            assert!(std::time::Instant::now() < deadline, "no lastError: {i}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(pending["status"], "PENDING");
        assert!(pending["lastError"].as_str().unwrap().contains("unavailable"), "{pending}");
        let v = app
            .gql(Some(&admin.token), "mutation { runBillingJob(job: RECONCILE_INSTANCES) { processed } }", json!({}))
            .await;
        assert_eq!(error_code(&v), "CLUSTER_UNAVAILABLE");

        fake.set_unavailable(false);
        reconcile(&app).await;
        let i = wait_status(&app, &cy.token, &id, "RUNNING").await;
        assert_eq!(balance(&app, &cy).await, 75_000, "nothing charged twice");
        let endpoint = i["endpoint"].as_str().unwrap();
        assert!(endpoint.ends_with(".svc.cluster.local:5432"), "{endpoint}");
        // The generated password lives in a Secret; the owner (and only the owner) reads it.
        let q = "query($id: ID!) { instance(id: $id) { credentials } }";
        let creds = app.gql_ok(Some(&cy.token), q, json!({ "id": id })).await["instance"]["credentials"].clone();
        let password = creds["password"].as_str().unwrap();
        assert!(password.len() >= 24, "{creds}");
        let v = app.gql(Some(&admin.token), q, json!({ "id": id })).await;
        assert_eq!(error_code(&v), "FORBIDDEN", "not even an administrator");
        let d =
            fake.get("deployments", i["namespace"].as_str().unwrap(), i["deploymentName"].as_str().unwrap()).unwrap();
        assert!(!d.to_string().contains(password), "the password is not in the Deployment");
    }

    #[tokio::test]
    async fn a_gateway_restarted_mid_provisioning_converges() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        fake.hold_rollouts(true);
        let app = gateway(&fake).await;
        let db = app.db.clone();
        let di = app.register("Di").await;
        let (_, id) = subscribe(&app, &di, "n8n-automation", "FREE").await;
        wait_status(&app, &di.token, &id, "PROVISIONING").await;
        app.stop().await;
        fake.hold_rollouts(false);
        let app = gateway_on(db, &fake).await;
        // The new process's first pass and watch finish what the old one started.
        wait_status(&app, &di.token, &id, "RUNNING").await;
    }

    #[tokio::test]
    async fn drift_is_repaired_orphans_deleted_and_foreign_objects_left_alone() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let ed = app.register("Ed").await;
        let (_, id) = subscribe(&app, &ed, "ghost-blog", "FREE").await;
        let i = wait_status(&app, &ed.token, &id, "RUNNING").await;
        let (ns, name) =
            (i["namespace"].as_str().unwrap().to_string(), i["deploymentName"].as_str().unwrap().to_string());
        assert!(fake.remove("services", &ns, &name));
        fake.put(
            "services",
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "orphan", "namespace": ns,
            "labels": { "app.kubernetes.io/managed-by": "minispod", "minispod.io/instance-id": "999999" } } }),
        );
        fake.put(
            "services",
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "theirs", "namespace": ns,
            "labels": { "minispod.io/instance-id": "999999" } } }),
        );
        fake.clear_requests();
        let r = reconcile(&app).await;
        assert_eq!(r["failed"], 0, "{r}");
        assert!(fake.get("services", &ns, &name).is_some(), "drift re-created");
        assert!(fake.get("services", &ns, "orphan").is_none(), "orphan deleted");
        assert!(fake.get("services", &ns, "theirs").is_some(), "foreign object untouched");
        let lists = fake.requests().into_iter().filter(|r| r.method == "GET" && !r.is_watch()).count();
        assert_eq!(lists, 6, "one list per kind, no GET per instance");
    }

    #[tokio::test]
    async fn others_get_not_found_and_concurrent_changes_conflict() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let fa = app.register("Fa").await;
        let gu = app.register("Gu").await;
        let (_, id) = subscribe(&app, &fa, "n8n-automation", "FREE").await;
        wait_status(&app, &fa.token, &id, "RUNNING").await;
        for m in ["startInstance", "stopInstance", "restartInstance", "retryProvisioning"] {
            assert_eq!(error_code(&act(&app, &gu.token, m, &id).await), "NOT_FOUND", "{m}");
        }
        assert_eq!(error_code(&app.gql(Some(&gu.token), INSTANCE, json!({ "id": id })).await), "NOT_FOUND");
        // Two stops at once: the version check lets exactly one through.
        let (a, b) = tokio::join!(act(&app, &fa.token, "stopInstance", &id), act(&app, &fa.token, "stopInstance", &id));
        let codes: Vec<Option<String>> =
            [&a, &b].iter().map(|v| v["errors"][0]["extensions"]["code"].as_str().map(str::to_string)).collect();
        assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "{a} {b}");
        assert_eq!(codes.iter().filter(|c| c.as_deref() == Some("CONFLICT")).count(), 1, "{a} {b}");
    }

    async fn wait_replicas(fake: &FakeWorkloads, ns: &str, name: &str, n: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while fake.get("deployments", ns, name).unwrap()["spec"]["replicas"] != n {
            assert!(std::time::Instant::now() < deadline, "replicas never became {n}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    #[tokio::test]
    async fn suspension_scales_to_zero_and_renewal_scales_back() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let admin = app.login_admin().await;
        let hu = app.register("Hu").await;
        give_credit(&app, &admin, &hu, 25_000).await;
        let (sub, id) = subscribe(&app, &hu, "postgresql", "BASIC").await;
        let i = wait_status(&app, &hu.token, &id, "RUNNING").await;
        let (ns, name) =
            (i["namespace"].as_str().unwrap().to_string(), i["deploymentName"].as_str().unwrap().to_string());
        let end = app
            .gql_ok(Some(&hu.token), "query($id: ID!) { subscription(id: $id) { endDate } }", json!({ "id": sub }))
            .await;
        let end = crate::helpers::ts(&end["subscription"]["endDate"]);
        let run = |job: &'static str| {
            let (app, token) = (&app, admin.token.clone());
            async move {
                app.gql_ok(
                    Some(&token),
                    "mutation($j: BillingJob!) { runBillingJob(job: $j) { processed } }",
                    json!({ "j": job }),
                )
                .await
            }
        };
        app.clock.advance(end + chrono::Duration::hours(1) - app.state.now());
        run("RENEWALS").await; // no credit: grace period
        app.clock.advance(chrono::Duration::days(7));
        run("GRACE_PERIOD").await;
        wait_status(&app, &hu.token, &id, "STOPPED").await;
        assert_eq!(fake.get("deployments", &ns, &name).unwrap()["spec"]["replicas"], 0);
        assert!(fake.get("persistentvolumeclaims", &ns, &format!("{name}-data")).is_some(), "data kept");
        assert_eq!(error_code(&act(&app, &hu.token, "startInstance", &id).await), "CONFLICT", "not while suspended");

        give_credit(&app, &admin, &hu, 25_000).await;
        app.gql_ok(
            Some(&hu.token),
            "mutation($id: ID!) { renewSubscription(id: $id) { status } }",
            json!({ "id": sub }),
        )
        .await;
        wait_status(&app, &hu.token, &id, "RUNNING").await;
        wait_replicas(&fake, &ns, &name, 1).await;
    }

    #[tokio::test]
    async fn an_upgrade_reapplies_with_the_new_plan() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let admin = app.login_admin().await;
        let jo = app.register("Jo").await;
        give_credit(&app, &admin, &jo, 200_000).await;
        let (sub, id) = subscribe(&app, &jo, "n8n-automation", "FREE").await;
        let i = wait_status(&app, &jo.token, &id, "RUNNING").await;
        let (ns, name) =
            (i["namespace"].as_str().unwrap().to_string(), i["deploymentName"].as_str().unwrap().to_string());
        let basic = plan_id(&app, "n8n-automation", "BASIC").await;
        app.gql_ok(
            Some(&jo.token),
            "mutation($id: ID!, $p: ID!) { upgradeSubscription(id: $id, planId: $p) { id } }",
            json!({ "id": sub, "p": basic }),
        )
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pvc = fake.get("persistentvolumeclaims", &ns, &format!("{name}-data")).unwrap();
            let d = fake.get("deployments", &ns, &name).unwrap();
            let limits = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].clone();
            if pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
                && limits == json!({ "cpu": "500m", "memory": "512Mi" })
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not re-applied: {limits} {pvc}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(instance(&app, &jo.token, &id).await["status"], "RUNNING");
    }

    #[tokio::test]
    async fn instance_updates_reach_the_owner_and_no_one_else() {
        use crate::support::ws::WsClient;
        const SUB: &str = "subscription { instanceUpdates { id status } }";
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let ki = app.register("Ki").await;
        let lu = app.register("Lu").await;
        let mut owner = WsClient::connect_ok(&app.ws_url(), Some(&ki.token)).await;
        owner.subscribe("1", SUB, json!({})).await;
        let mut other = WsClient::connect_ok(&app.ws_url(), Some(&lu.token)).await;
        other.subscribe("1", SUB, json!({})).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.state.instance_hub.subscribers() < 2 {
            assert!(std::time::Instant::now() < deadline, "subscriptions never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, id) = subscribe(&app, &ki, "n8n-automation", "FREE").await;
        let mut seen = vec![];
        while seen.last().map(String::as_str) != Some("RUNNING") {
            let m = owner.next_message(Duration::from_secs(10)).await.expect("an instanceUpdates event");
            let i = &m["payload"]["data"]["instanceUpdates"];
            assert_eq!(i["id"], id.as_str(), "{m}");
            seen.push(i["status"].as_str().unwrap().to_string());
        }
        assert!(seen.contains(&"PROVISIONING".to_string()), "{seen:?}");
        assert!(other.next_message(Duration::from_millis(300)).await.is_none(), "others see nothing");
    }

    #[tokio::test]
    async fn of_two_changes_read_at_the_same_version_only_one_is_written() {
        use minispod_gateway::instances::{entity as instance, lifecycle::Action, service};
        use sea_orm::EntityTrait;
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        let app = gateway(&fake).await;
        let mo = app.register("Mo").await;
        let (_, id) = subscribe(&app, &mo, "n8n-automation", "FREE").await;
        wait_status(&app, &mo.token, &id, "RUNNING").await;
        let id: i64 = id.parse().unwrap();
        // Both requests have read the row (same version) before either writes: the overlap
        // is there by construction, not by timing.
        let first = instance::Entity::find_by_id(id).one(&app.state.db.conn).await.unwrap().unwrap();
        let second = first.clone();
        service::transition(&app.state, &first, Action::Stop, Default::default()).await.unwrap();
        let e = service::transition(&app.state, &second, Action::Restart, Default::default()).await.unwrap_err();
        assert_eq!(e.code(), "CONFLICT", "{e}");
        assert!(e.to_string().contains("RUNNING"), "names the status it saw: {e}");
        let now = instance::Entity::find_by_id(id).one(&app.state.db.conn).await.unwrap().unwrap();
        assert_eq!((now.status.as_str(), now.version), ("STOPPING", first.version + 1));
    }

    #[tokio::test]
    async fn an_app_that_never_becomes_available_times_out() {
        let fake = FakeWorkloads::start(Duration::from_millis(50)).await;
        fake.hold_rollouts(true); // pods stay ContainerCreating: no failure is ever reported
        let app = gateway(&fake).await;
        let no = app.register("No").await;
        let (_, id) = subscribe(&app, &no, "n8n-automation", "FREE").await;
        wait_status(&app, &no.token, &id, "PROVISIONING").await;
        reconcile(&app).await;
        assert_eq!(instance(&app, &no.token, &id).await["status"], "PROVISIONING", "not yet");
        app.clock.advance(chrono::Duration::seconds(601)); // MINISPOD_PROVISION_TIMEOUT_SECS defaults to 600
        reconcile(&app).await;
        let i = instance(&app, &no.token, &id).await;
        assert_eq!(i["status"], "ERROR", "{i}");
        assert!(i["lastError"].as_str().unwrap().contains("within 600 s"), "{i}");
    }
}
