//! The Helm chart (`helm/dfscan`) and the container files (`deploy/`).
//!
//! Helm itself renders and lints the chart (Helm 4's Go SDK, through
//! `helm-python-sdk` in `.venv-tools`; see `tests/chart/chart_tool.py`),
//! and every rendered manifest is validated against the Kubernetes 1.30
//! schemas, strictly (unknown fields are errors), or for KEDA's and
//! prometheus-operator's resources against models of their CRDs. Invalid
//! values must be refused by `values.schema.json`.
//!
//! `rendered_processes_score_a_job` then runs what the chart renders: the
//! coordinator's and the worker's command, args and environment (secret and
//! config map references resolved from the rendered Secret and ConfigMap,
//! config files written where their volumes are mounted) as local processes
//! against a local redis-server, and scores a job through them with the
//! API token the chart generated (none is given in the values).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

#[path = "chart/pod.rs"]
mod pod;

use common::cluster::{http_get, read_jsonl, wait_for_port, wait_for_status, write_images, Proc};
use common::{dfscan, fixtures, repo, tools_python};
use dfscan_testkit::{free_port, RedisServer};
use pod::{base64_decode, Pod};
use serde_json::{json, Value};

/// The Kubernetes version the manifests are validated against.
const KUBE_VERSION: &str = "1.30.0";
const RELEASE: &str = "rel";
const NAMESPACE: &str = "dfscan";
const HUB_MODEL: &str = "prithivMLmods/Deep-Fake-Detector-Model";
/// The tenant of the token the chart generates when given none.
const GENERATED_TENANT: &str = "default";

/// Renders, lints and validates the chart once per case (one Python run).
fn run_chart_tool(cases: &[(&str, Value)]) -> Value {
    let request = json!({
        "chart": repo().join("helm/dfscan"),
        "kube_version": KUBE_VERSION,
        "release": RELEASE,
        "namespace": NAMESPACE,
        "cases": cases
            .iter()
            .map(|(name, values)| json!({"name": name, "values": values}))
            .collect::<Vec<_>>(),
    });
    let mut child = Command::new(tools_python())
        .arg(repo().join("tests/chart/chart_tool.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running the chart tool");
    serde_json::to_writer(child.stdin.take().unwrap(), &request).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chart_tool.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the chart tool's report")
}

/// The fixed cases: the chart's values in each configuration the issue
/// names, and values the schema must refuse (with the key it must name).
fn valid_cases() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        (
            "keda",
            json!({
                "autoscaling": {"mode": "keda", "minReplicas": 0, "maxReplicas": 6,
                                "keda": {"lagCount": 4, "fallbackReplicas": 1}},
                "config": {"queue": {"key_prefix": "prod"}},
            }),
        ),
        (
            "hpa",
            json!({"autoscaling": {"mode": "hpa", "minReplicas": 0, "maxReplicas": 4}}),
        ),
        (
            "internal-redis",
            json!({"redis": {"internal": {"enabled": true}}}),
        ),
        (
            "external-redis-existing-secret",
            json!({
                "redis": {"host": "redis.data.svc.cluster.local", "port": 6380, "db": 2},
                "secrets": {"existingSecret": "dfscan-secrets"},
                "autoscaling": {"mode": "keda"},
            }),
        ),
        ("gpu-2", json!({"worker": {"gpu": {"count": 2}}})),
        (
            "networkpolicy-servicemonitor",
            json!({
                "networkPolicy": {"enabled": true},
                "metrics": {"enabled": true, "serviceMonitor": {"enabled": true}},
                "redis": {"internal": {"enabled": true}},
                "worker": {"gpu": {"count": 2}},
            }),
        ),
        (
            "prepopulated-volume",
            json!({
                "model": {"localDir": "checkpoints/vit-ft", "offline": true,
                          "volume": {"type": "existingClaim", "existingClaim": "models",
                                     "mountPath": "/models", "readOnly": true}},
                "worker": {"gpu": {"count": 0}, "uriRoots": ["/data"]},
            }),
        ),
        (
            "tls-client-certificates",
            json!({"tls": {"enabled": true, "secretName": "dfscan-tls",
                           "clientCertificates": "required"}}),
        ),
        (
            "model-cache-pvc",
            json!({"model": {"volume": {"type": "persistentVolumeClaim"}},
                   "worker": {"dtype": "bf16"}}),
        ),
        (
            "api-tokens-given",
            json!({"secrets": {"apiTokens": "team-a aaaaaaaaaaaaaaaaaaaa\nteam-b bbbbbbbbbbbbbbbbbbbb\n"}}),
        ),
        ("auth-disabled", json!({"auth": {"disabled": true}})),
    ]
}

fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "tls-bad-client-certificates",
            json!({"tls": {"enabled": true, "secretName": "s", "clientCertificates": "maybe"}}),
            "/tls/clientCertificates",
        ),
        (
            "negative-replicas",
            json!({"worker": {"replicas": -1}}),
            "/worker/replicas",
        ),
        (
            "bad-pull-policy",
            json!({"coordinator": {"image": {"pullPolicy": "Sometimes"}}}),
            "/coordinator/image/pullPolicy",
        ),
        (
            "gpu-count-string",
            json!({"worker": {"gpu": {"count": "2"}}}),
            "/worker/gpu/count",
        ),
        (
            "unknown-top-level-key",
            json!({"replicaCount": 3}),
            "replicaCount",
        ),
        (
            "unknown-config-key",
            json!({"config": {"queue": {"visibility_timeout": 5000}}}),
            "visibility_timeout",
        ),
        (
            "bad-dtype",
            json!({"worker": {"dtype": "int8"}}),
            "/worker/dtype",
        ),
        (
            "bad-device",
            json!({"worker": {"device": "gpu"}}),
            "/worker/device",
        ),
        (
            "both-autoscalers",
            json!({"autoscaling": {"mode": "keda+hpa"}}),
            "/autoscaling/mode",
        ),
        (
            "zero-lag-count",
            json!({"autoscaling": {"keda": {"lagCount": 0}}}),
            "/autoscaling/keda/lagCount",
        ),
        (
            "servicemonitor-without-metrics",
            json!({"metrics": {"serviceMonitor": {"enabled": true}}}),
            "/metrics/enabled",
        ),
        (
            "external-redis-without-host",
            json!({"redis": {"host": ""}}),
            "/redis/host",
        ),
        (
            "model-dir-escapes-volume",
            json!({"model": {"localDir": "../etc"}}),
            "/model/localDir",
        ),
        (
            "task-size-over-limit",
            json!({"config": {"coordinator": {"task_size": 4096}}}),
            "/config/coordinator/task_size",
        ),
        (
            "password-not-url-safe",
            json!({"secrets": {"redisPassword": "p@ss/word"}}),
            "/secrets/redisPassword",
        ),
        (
            "rolling-update-that-cannot-progress",
            json!({"worker": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
            "/worker/rollingUpdate",
        ),
        (
            "health-port-zero",
            json!({"worker": {"healthPort": 0}}),
            "/worker/healthPort",
        ),
    ]
}

/// The report of every fixed case, computed once for all tests.
fn report() -> &'static Value {
    static REPORT: OnceLock<Value> = OnceLock::new();
    REPORT.get_or_init(|| {
        let mut cases = valid_cases();
        cases.extend(invalid_cases().into_iter().map(|(n, v, _)| (n, v)));
        run_chart_tool(&cases)
    })
}

fn case(name: &str) -> &'static Value {
    report()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// A case that must render, lint clean and validate; its manifests.
fn rendered(name: &str) -> Manifests {
    let c = case(name);
    assert!(c["schema_error"].is_null(), "{name}: {}", c["schema_error"]);
    assert!(c["render_error"].is_null(), "{name}: {}", c["render_error"]);
    assert_eq!(c["lint_errors"], json!([]), "{name}: helm lint");
    assert_eq!(c["lint_messages"], json!([]), "{name}: helm lint warnings");
    assert_eq!(c["validation_errors"], json!([]), "{name}: schemas");
    Manifests::new(c)
}

/// The rendered manifests of one case.
struct Manifests {
    docs: Vec<Value>,
    notes: String,
}

impl Manifests {
    fn new(case: &Value) -> Self {
        let docs: Vec<Value> = case["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manifest"].clone())
            .collect();
        assert!(!docs.is_empty());
        Self {
            docs,
            notes: case["notes"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .docs
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.kinds()))
    }

    fn has(&self, kind: &str) -> bool {
        !self.of_kind(kind).is_empty()
    }

    fn coordinator(&self) -> &Value {
        self.get("Deployment", &format!("{RELEASE}-dfscan-coordinator"))
    }

    fn worker(&self) -> &Value {
        self.get("Deployment", &format!("{RELEASE}-dfscan-worker"))
    }

    /// The config file of the ConfigMap, parsed.
    fn config(&self) -> Value {
        let cm = self.get("ConfigMap", &format!("{RELEASE}-dfscan-config"));
        serde_json::from_str(cm["data"]["dfscan.json"].as_str().unwrap()).unwrap()
    }
}

fn containers(deployment: &Value) -> &Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

fn env_of<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {}", container["name"]))
}

fn all_pod_specs(m: &Manifests) -> Vec<&Value> {
    m.docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .map(|d| &d["spec"]["template"]["spec"])
        .collect()
}

/// Every pod: non-root, read-only root, no capabilities, no API token, no
/// service-link variables (they would be read as DFSCAN_* settings).
fn assert_hardened(m: &Manifests) {
    for pod in all_pod_specs(m) {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["enableServiceLinks"], false);
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{}", c["name"]);
        }
    }
}

/// The Redis URL reaches dfscan from the Secret, never through the ConfigMap.
fn assert_redis_from_secret(m: &Manifests, secret: &str, host_port_db: &str) {
    assert!(
        m.config().get("redis").is_none(),
        "redis URL in the ConfigMap"
    );
    for deployment in [m.coordinator(), m.worker()] {
        for c in containers(deployment) {
            let password = env_of(c, "REDIS_PASSWORD");
            assert_eq!(
                password["valueFrom"]["secretKeyRef"],
                json!({"name": secret, "key": "redis-password"})
            );
            assert_eq!(
                env_of(c, "DFSCAN_REDIS")["value"],
                format!("redis://:$(REDIS_PASSWORD)@{host_port_db}")
            );
        }
    }
}

#[test]
fn defaults_render_lint_and_validate() {
    let m = rendered("defaults");
    assert_eq!(
        m.kinds(),
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );
    assert_hardened(&m);
    assert_redis_from_secret(&m, &format!("{RELEASE}-dfscan"), "redis:6379/0");

    // One config file for every process: the served model is accepted by
    // the coordinators even while no worker runs.
    let config = m.config();
    assert_eq!(config["model"], HUB_MODEL);
    assert_eq!(config["device"], "cuda");
    assert_eq!(config["coordinator"]["listen"], "0.0.0.0:50051");
    assert_eq!(config["coordinator"]["models"], json!([HUB_MODEL]));
    assert_eq!(config["coordinator"]["default_model"], HUB_MODEL);
    assert_eq!(config["worker"]["drain_grace_s"], 30);
    // Authentication is on: the tokens come from the Secret's file.
    assert_eq!(
        config["coordinator"]["auth"],
        json!({"tokens_file": "/etc/dfscan/secrets/api-tokens", "tenant_max_queued_items": 0})
    );
    assert!(config.get("metrics").is_none());

    let coordinator = m.coordinator();
    assert_eq!(coordinator["spec"]["replicas"], 2);
    let c = &containers(coordinator)[0];
    assert_eq!(c["command"], json!(["dfscan-coordinator"]));
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["grpc"]["port"], 50051, "{probe}");
    }
    // Callbacks are signed with the Secret's webhook-secret.
    assert_eq!(
        env_of(c, "DFSCAN_COORDINATOR__CALLBACK_SECRET")["valueFrom"]["secretKeyRef"],
        json!({"name": format!("{RELEASE}-dfscan"), "key": "webhook-secret", "optional": true})
    );
    let pdb = m.get(
        "PodDisruptionBudget",
        &format!("{RELEASE}-dfscan-coordinator"),
    );
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        coordinator["spec"]["selector"]["matchLabels"]
    );
    let service = m.get("Service", &format!("{RELEASE}-dfscan-coordinator"));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "grpc");

    // Workers: one GPU each, a grace period longer than their drain.
    let worker = m.worker();
    assert_eq!(worker["spec"]["replicas"], 1);
    let pod = &worker["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 45);
    let w = &containers(worker)[0];
    assert_eq!(w["command"], json!(["dfscan"]));
    assert_eq!(w["args"][0], "worker");
    assert_eq!(w["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(w["resources"]["requests"]["nvidia.com/gpu"], 1);
    assert_eq!(
        env_of(w, "PYTORCH_CUDA_ALLOC_CONF")["value"],
        "expandable_segments:True"
    );
    assert_worker_probes(&m);
    assert_eq!(env_of(w, "HF_HOME")["value"], "/var/cache/huggingface");
    assert!(pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "model" && v.get("emptyDir").is_some()));
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
        worker["spec"]["selector"]["matchLabels"]
    );
    assert!(
        m.notes.contains("dfscan submit --coordinator"),
        "{}",
        m.notes
    );
}

/// The Secret's `api-tokens` as the coordinator reads it.
fn api_tokens(m: &Manifests) -> String {
    let secret = m.get("Secret", &format!("{RELEASE}-dfscan"));
    String::from_utf8(base64_decode(
        secret["data"]["api-tokens"].as_str().unwrap(),
    ))
    .unwrap()
}

/// The coordinator's `secrets` volume (the tokens file).
fn secrets_volume(m: &Manifests) -> &Value {
    m.coordinator()["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets")
        .unwrap()
}

/// The generated token: `TENANT TOKEN`, 32 letters and digits.
fn generated_token(tokens: &str) -> &str {
    let token = tokens
        .strip_prefix(&format!("{GENERATED_TENANT} "))
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("not a generated tokens file: {tokens:?}"));
    assert!(
        token.len() == 32 && token.chars().all(|c| c.is_ascii_alphanumeric()),
        "{token:?}"
    );
    token
}

#[test]
fn api_tokens_are_generated_when_none_are_given() {
    // Defaults: a coordinator refuses an empty tokens file, so the chart
    // makes a token (helm template cannot look up a kept one: a fresh one
    // each render), and the notes say how to read it and pass it.
    let m = rendered("defaults");
    generated_token(&api_tokens(&m));
    assert_eq!(secrets_volume(&m)["secret"]["optional"], false);
    for needle in [
        "export DFSCAN_CLIENT__TOKEN=$(kubectl --namespace dfscan get secret rel-dfscan \
         -o jsonpath='{.data.api-tokens}' | base64 -d | awk '$1 == \"default\" {print $2}')",
        "scripts/install.sh",
    ] {
        assert!(m.notes.contains(needle), "{needle} not in\n{}", m.notes);
    }
    let again = run_chart_tool(&[("defaults-again", json!({}))]);
    let again = Manifests::new(&again["cases"][0]);
    assert_ne!(api_tokens(&again), api_tokens(&m), "a fixed token");

    // Given tokens are written as they are; the notes say where they are.
    let m = rendered("api-tokens-given");
    assert_eq!(
        api_tokens(&m),
        "team-a aaaaaaaaaaaaaaaaaaaa\nteam-b bbbbbbbbbbbbbbbbbbbb\n"
    );
    assert!(
        m.notes.contains("awk '$1 == \"TENANT\" {print $2}'") && !m.notes.contains("generated"),
        "{}",
        m.notes
    );

    // An existing Secret must hold the tokens: the pod waits for the key
    // instead of the coordinator exiting on a missing file.
    let m = rendered("external-redis-existing-secret");
    assert_eq!(secrets_volume(&m)["secret"]["optional"], false);

    // Authentication off: nothing generated, nothing needed.
    let m = rendered("auth-disabled");
    assert_eq!(api_tokens(&m), "");
    assert_eq!(m.config()["coordinator"]["auth"], json!({"disabled": true}));
    assert_eq!(secrets_volume(&m)["secret"]["optional"], true);
    assert!(
        m.notes.contains("Authentication is off") && !m.notes.contains("DFSCAN_CLIENT__TOKEN"),
        "{}",
        m.notes
    );
}

#[test]
fn keda_scales_workers_on_the_task_stream_lag() {
    let m = rendered("keda");
    assert!(!m.has("HorizontalPodAutoscaler"), "KEDA and an HPA at once");
    // KEDA owns the replica count (from zero).
    assert!(m.worker()["spec"].get("replicas").is_none());
    let so = m.get("ScaledObject", &format!("{RELEASE}-dfscan-worker"));
    let spec = &so["spec"];
    assert_eq!(
        spec["scaleTargetRef"]["name"],
        format!("{RELEASE}-dfscan-worker")
    );
    assert_eq!(spec["minReplicaCount"], 0);
    assert_eq!(spec["maxReplicaCount"], 6);
    assert_eq!(spec["fallback"]["replicas"], 1);
    // One trigger per task stream: bulk jobs, then online calls.
    let streams: Vec<&Value> = spec["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["metadata"]["stream"])
        .collect();
    // The queue's key layout (crates/queue/src/redis/keys.rs), with the
    // configured prefix, which the processes get from the same values.
    assert_eq!(
        streams,
        [
            &json!(format!("prod:tasks:{{m:{HUB_MODEL}}}")),
            &json!(format!("prod:online:{{m:{HUB_MODEL}}}"))
        ]
    );
    assert_eq!(spec["triggers"][0], {
        let mut online = spec["triggers"][1].clone();
        online["metadata"]["stream"] = spec["triggers"][0]["metadata"]["stream"].clone();
        online
    });
    let trigger = &spec["triggers"][0];
    assert_eq!(trigger["type"], "redis-streams");
    let meta = &trigger["metadata"];
    assert_eq!(m.config()["queue"]["key_prefix"], "prod");
    assert_eq!(meta["consumerGroup"], "workers");
    assert_eq!(meta["lagCount"], "4");
    assert_eq!(meta["activationLagCount"], "0");
    assert_eq!(meta["address"], "redis:6379");
    assert_eq!(meta["databaseIndex"], "0");
    let auth = m.get(
        "TriggerAuthentication",
        trigger["authenticationRef"]["name"].as_str().unwrap(),
    );
    assert_eq!(
        auth["spec"]["secretTargetRef"],
        json!([{"parameter": "password", "name": format!("{RELEASE}-dfscan"), "key": "redis-password"}])
    );
    assert!(m.notes.contains("prod:tasks:"), "{}", m.notes);
}

#[test]
fn hpa_is_the_alternative_to_keda() {
    let m = rendered("hpa");
    assert!(!m.has("ScaledObject") && !m.has("TriggerAuthentication"));
    assert!(m.worker()["spec"].get("replicas").is_none());
    let hpa = m.get(
        "HorizontalPodAutoscaler",
        &format!("{RELEASE}-dfscan-worker"),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1, "an HPA cannot scale to zero");
    assert_eq!(hpa["spec"]["maxReplicas"], 4);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
}

#[test]
fn in_chart_redis_keeps_every_write() {
    let m = rendered("internal-redis");
    assert_hardened(&m);
    let name = format!("{RELEASE}-dfscan-redis");
    let sts = m.get("StatefulSet", &name);
    let c = &containers(sts)[0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for pair in [
        ["--appendonly", "yes"],
        ["--appendfsync", "always"],
        ["--maxmemory-policy", "noeviction"],
        ["--requirepass", "$(REDIS_PASSWORD)"],
    ] {
        assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
    }
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "8Gi"
    );
    m.get("Service", &name);
    assert_redis_from_secret(&m, &format!("{RELEASE}-dfscan"), &format!("{name}:6379/0"));
    let secret = m.get("Secret", &format!("{RELEASE}-dfscan"));
    let password = base64_decode(secret["data"]["redis-password"].as_str().unwrap());
    assert_eq!(password.len(), 32, "a generated password");
}

#[test]
fn external_redis_with_an_existing_secret() {
    let m = rendered("external-redis-existing-secret");
    assert!(!m.has("Secret"), "the chart must not create a Secret");
    assert_redis_from_secret(&m, "dfscan-secrets", "redis.data.svc.cluster.local:6380/2");
    let pod = &m.coordinator()["spec"]["template"]["spec"];
    let secrets = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets")
        .unwrap();
    assert_eq!(secrets["secret"]["secretName"], "dfscan-secrets");
    let so = m.get("ScaledObject", &format!("{RELEASE}-dfscan-worker"));
    assert_eq!(
        so["spec"]["triggers"][0]["metadata"]["address"],
        "redis.data.svc.cluster.local:6380"
    );
    assert_eq!(so["spec"]["triggers"][0]["metadata"]["databaseIndex"], "2");
    let auth = m.get("TriggerAuthentication", &format!("{RELEASE}-dfscan-worker"));
    assert_eq!(auth["spec"]["secretTargetRef"][0]["name"], "dfscan-secrets");
}

#[test]
fn two_gpus_make_two_workers_per_pod() {
    let m = rendered("gpu-2");
    let cs = containers(m.worker());
    assert_eq!(cs.len(), 2, "one dfscan worker per GPU");
    let mut ids = Vec::new();
    for c in cs {
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], 1);
        assert_eq!(c["resources"]["requests"]["cpu"], "4");
        ids.push(env_of(c, "DFSCAN_WORKER__WORKER_ID")["value"].clone());
    }
    assert_eq!(ids, [json!("$(POD_NAME)-0"), json!("$(POD_NAME)-1")]);
    assert_worker_probes(&m);
}

/// Every worker container serves its own health port (they share the pod's
/// network), named for its probes: startup and readiness on /readyz,
/// liveness on /livez; and a rolling update never takes a worker down
/// before its replacement is ready.
fn assert_worker_probes(m: &Manifests) {
    let worker = m.worker();
    assert_eq!(
        worker["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    assert_eq!(m.config()["worker"]["liveness_timeout_s"], 120);
    for (i, c) in containers(worker).iter().enumerate() {
        let (name, port) = match i {
            0 => ("health".to_string(), 8081),
            i => (format!("health-{i}"), 8081 + i as u64),
        };
        assert_eq!(
            env_of(c, "DFSCAN_WORKER__HEALTH_LISTEN")["value"],
            format!("0.0.0.0:{port}")
        );
        assert!(
            c["ports"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": name, "containerPort": port, "protocol": "TCP"})),
            "{}",
            c["ports"]
        );
        for (probe, path, period, failures) in [
            ("startupProbe", "/readyz", 10, 180),
            ("readinessProbe", "/readyz", 5, 2),
            ("livenessProbe", "/livez", 10, 3),
        ] {
            assert_eq!(
                c[probe],
                json!({"httpGet": {"path": path, "port": name}, "periodSeconds": period,
                       "failureThreshold": failures, "timeoutSeconds": 5}),
                "{probe} of {}",
                c["name"]
            );
        }
    }
}

#[test]
fn network_policies_and_service_monitor() {
    let m = rendered("networkpolicy-servicemonitor");
    assert_eq!(m.of_kind("NetworkPolicy").len(), 3);
    assert_eq!(m.config()["metrics"]["listen"], "0.0.0.0:9090");
    // Worker containers share the pod's network: a metrics port each.
    let listens: Vec<&Value> = containers(m.worker())
        .iter()
        .map(|c| &env_of(c, "DFSCAN_METRICS__LISTEN")["value"])
        .collect();
    assert_eq!(listens, [&json!("0.0.0.0:9090"), &json!("0.0.0.0:9091")]);
    let sm = m.get("ServiceMonitor", &format!("{RELEASE}-dfscan"));
    let selector = &sm["spec"]["selector"]["matchLabels"];
    let scraped: Vec<&Value> = m
        .of_kind("Service")
        .into_iter()
        .filter(|s| {
            selector
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(
        scraped.len(),
        2,
        "the coordinator and worker metrics Services"
    );
    // Workers take the kubelet's probes (from the node, so from anywhere
    // by default) on their health ports, and scrapes on their metrics ports.
    let workers = m.get("NetworkPolicy", &format!("{RELEASE}-dfscan-worker"));
    let ingress = &workers["spec"]["ingress"];
    let tcp = |port: u64| json!({"protocol": "TCP", "port": port});
    assert_eq!(ingress[0], json!({"ports": [tcp(8081), tcp(8082)]}));
    assert_eq!(ingress[1]["ports"], json!([tcp(9090), tcp(9091)]));
    assert_eq!(ingress.as_array().unwrap().len(), 2);
    // Only dfscan's pods reach the in-chart Redis.
    let redis = m.get("NetworkPolicy", &format!("{RELEASE}-dfscan-redis"));
    assert_eq!(
        redis["spec"]["ingress"][0]["from"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn prepopulated_volume_and_model_cache_pvc() {
    let m = rendered("prepopulated-volume");
    let config = m.config();
    assert_eq!(config["model"], "/models/checkpoints/vit-ft");
    assert_eq!(config["device"], "cpu");
    assert_eq!(config["coordinator"]["models"], json!(["vit-ft"]));
    assert_eq!(config["worker"]["uri_roots"], json!(["/data"]));
    let w = &containers(m.worker())[0];
    assert_eq!(env_of(w, "HF_HUB_OFFLINE")["value"], "1");
    assert!(w["resources"]["limits"].get("nvidia.com/gpu").is_none());
    assert!(!m.has("PersistentVolumeClaim"));

    let m = rendered("model-cache-pvc");
    let pvc = m.get("PersistentVolumeClaim", &format!("{RELEASE}-dfscan-model"));
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(m.config()["dtype"], "bf16");
}

#[test]
fn overlapping_health_and_metrics_ports_are_refused() {
    let values = json!({"metrics": {"enabled": true, "port": 8082},
                        "worker": {"gpu": {"count": 2}}});
    let report = run_chart_tool(&[("ports-overlap", values)]);
    let error = report["cases"][0]["render_error"].to_string();
    assert!(
        error.contains("worker.healthPort (8081) and metrics.port (8082) overlap"),
        "{error}"
    );
}

#[test]
fn invalid_values_are_rejected_by_the_schema() {
    for (name, _, path) in invalid_cases() {
        let c = case(name);
        let error = c["schema_error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(error.contains(path), "{name}: {error}");
        // `helm lint` reports the same.
        let lint = c["lint_errors"].to_string();
        assert!(lint.contains(path), "{name}: lint {lint}");
    }
}

#[test]
fn chart_readme_documents_every_value() {
    let readme = std::fs::read_to_string(repo().join("helm/dfscan/README.md")).unwrap();
    let missing: Vec<&str> = report()["value_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .filter(|p| !readme.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "values missing from the README table: {missing:?}"
    );
}

#[test]
fn dockerfiles_pass_hadolint() {
    let dockerfiles: Vec<PathBuf> = ["coordinator", "worker"]
        .iter()
        .map(|n| repo().join(format!("deploy/{n}.Dockerfile")))
        .collect();
    let out = Command::new(repo().join(".venv-tools/bin/hadolint"))
        .arg("--no-color")
        .args(&dockerfiles)
        .output()
        .expect("running hadolint (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The images run what the chart runs, as the chart's user.
    let worker = std::fs::read_to_string(&dockerfiles[1]).unwrap();
    assert!(worker.contains("torch==2.11.0") && worker.contains("USER 65532:65532"));
    let coordinator = std::fs::read_to_string(&dockerfiles[0]).unwrap();
    assert!(coordinator.contains("ENTRYPOINT [\"dfscan-coordinator\"]"));
    assert!(coordinator.contains("USER 65532:65532"));
}

#[test]
fn compose_file_is_valid() {
    let out = Command::new("docker-compose")
        .args(["-f", "deploy/docker-compose.yml", "config", "-q"])
        .current_dir(repo())
        .env("REDIS_PASSWORD", "compose-check")
        .output()
        .expect("running docker-compose (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rendered_processes_score_a_job() {
    let tmp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let password = "k8s-chart-test-password";
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query::<()>(&mut admin)
        .unwrap();

    // Only what a user would set for this cluster: where Redis is (the
    // local server stands for the external Redis, so no host is
    // rewritten), its password, a free gRPC port, the model from a
    // pre-populated volume, CPU workers, and fast queue timings. No API
    // tokens: the chart's own is used, as its notes tell.
    let (grpc, health) = (free_port(), free_port());
    let values = json!({
        "redis": {"host": "127.0.0.1", "port": redis.port(), "db": 0},
        "secrets": {"redisPassword": password},
        "coordinator": {"port": grpc, "replicas": 1},
        "model": {
            "localDir": "tiny-a",
            "offline": true,
            "volume": {"type": "existingClaim", "existingClaim": "dfscan-models",
                       "mountPath": "/models", "readOnly": true},
        },
        "worker": {"gpu": {"count": 0}, "threads": 1, "decodeThreads": 1,
                   "maxBatch": 8, "drainGraceSeconds": 5, "healthPort": health},
        "config": {
            "queue": {"visibility_timeout_ms": 2000, "worker_ttl_ms": 3000},
            "worker": {"claim_wait_ms": 200, "heartbeat_ms": 500},
            // The worker image carries its face detector (and names it in
            // DFSCAN_FACES__DETECTOR, deploy/worker.Dockerfile); this local
            // process is given setup's.
            "faces": {"detector": common::setup_file(".face-detector")},
        },
        "logLevel": "warn",
    });
    let report = run_chart_tool(&[("processes", values)]);
    let c = &report["cases"][0];
    assert!(c["schema_error"].is_null(), "{}", c["schema_error"]);
    assert_eq!(c["validation_errors"], json!([]));
    let m = Manifests::new(c);

    // The one path rewrite: the claim "dfscan-models" (a volume holding
    // checkpoint directories) is the fixtures' models directory, so every
    // path under its mount (/models: HF_HOME, the config file's `model`)
    // points there. Config map, secret and emptyDir volumes are written to
    // the temporary directory, and paths under their mounts follow.
    let claims = HashMap::from([("dfscan-models", fixtures().join("models"))]);
    let mut procs: BTreeMap<&str, (Proc, u64)> = BTreeMap::new();
    for (role, deployment) in [("coordinator", m.coordinator()), ("worker", m.worker())] {
        let container = &containers(deployment)[0];
        let pod = Pod::new(&m, deployment, container, &tmp.path().join(role), &claims);
        pod.rewrite_config_files();
        let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        procs.insert(role, (Proc::spawn(role, pod.command(container)), grace));
        if role == "coordinator" {
            wait_for_port(grpc);
        }
    }
    // The token the notes read from the Secret is the one the coordinator
    // was given.
    let tokens = api_tokens(&m);
    let token = generated_token(&tokens);
    let secret_file = tmp.path().join("coordinator/secrets/api-tokens");
    assert_eq!(std::fs::read_to_string(secret_file).unwrap(), tokens);

    // The worker answers its probes on the port the chart names: ready
    // once its model is loaded and warmed up, live while it claims.
    let ready = wait_for_status(health, "/readyz", 200, Duration::from_secs(120));
    assert_eq!(ready.trim(), "ready");
    let (status, live) = http_get(health, "/livez", Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200, "{live}");

    let images = write_images(tmp.path(), 24);
    let output = tmp.path().join("results.jsonl");
    let url = format!("http://127.0.0.1:{grpc}");
    // Authentication is on, as the chart configures it: without the token
    // the job is refused, with it it goes through.
    let submit = || {
        let mut cmd = dfscan();
        cmd.args(["submit", "--coordinator", &url, "--output"])
            .arg(&output)
            .arg(&images);
        cmd
    };
    let refused = submit().output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = submit()
        .env("DFSCAN_CLIENT__TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = read_jsonl(&output);
    assert_eq!(lines.len(), 24);
    for line in &lines {
        assert!(line["error"].is_null(), "{line}");
        assert_eq!(line["model"]["name"], "tiny-a", "{line}");
        assert!(line["fake_score"].is_number(), "{line}");
    }

    // The worker registered under its pod's name (POD_NAME from the
    // downward API), on the CPU the values asked for.
    let models = dfscan()
        .args(["models", "--coordinator", &url])
        .env("DFSCAN_CLIENT__TOKEN", token)
        .output()
        .unwrap();
    let models = String::from_utf8(models.stdout).unwrap();
    let worker = format!("worker {RELEASE}-dfscan-worker-local-0 (");
    assert!(
        models.contains(&worker) && models.contains("model tiny-a on cpu"),
        "{models}"
    );

    // SIGTERM, as Kubernetes stops a pod: each process exits by itself
    // within the grace period the chart gives it.
    for (role, (proc, grace)) in procs.iter_mut() {
        proc.signal("TERM");
        let status = proc.wait_exit(Duration::from_secs(*grace));
        assert!(status.success(), "{role} exited with {status}");
    }
}

#[test]
fn tls_serves_the_grpc_port_from_a_tls_secret() {
    let m = rendered("tls-client-certificates");
    assert_eq!(
        m.config()["coordinator"]["tls"],
        json!({"cert_file": "/etc/dfscan/tls/tls.crt", "key_file": "/etc/dfscan/tls/tls.key",
               "client_ca_file": "/etc/dfscan/tls/ca.crt", "client_cert_required": true})
    );
    let coordinator = m.coordinator();
    let c = &containers(coordinator)[0];
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "tls" && v["mountPath"] == "/etc/dfscan/tls"));
    let volumes = &coordinator["spec"]["template"]["spec"]["volumes"];
    assert!(volumes
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == "dfscan-tls"));
    // Kubernetes' gRPC probes cannot speak TLS.
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["tcpSocket"]["port"], 50051, "{probe}");
        assert!(c[probe].get("grpc").is_none(), "{probe}");
    }
}
