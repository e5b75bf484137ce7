//! A real Kubernetes API server on 127.0.0.1 for the operator's opt-in suites: etcd and
//! kube-apiserver started from the binaries in `FERRY_KUBE_BIN` on free ports with a temporary
//! data dir, a static admin token, RBAC on; plus the rest of a Ferry installation in this
//! process (the embedded log, a dispatcher fed from the contract Secret as a kubelet would
//! mount it, and the operator).
//!
//! Nothing here builds those binaries; `docs/operator.md` says how to get them.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_api::contract::Contract;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Config};
use tokio::sync::watch;

/// The variable naming the directory that holds `kube-apiserver` and `etcd`.
pub const BIN_VAR: &str = "FERRY_KUBE_BIN";
/// The admin's bearer token (group system:masters).
pub const ADMIN_TOKEN: &str = "ferry-e2e-admin-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os(BIN_VAR).unwrap_or_else(|| {
        panic!(
            "{BIN_VAR} is not set: point it at a directory holding kube-apiserver and etcd \
             (see docs/operator.md, 'The real API server suite')"
        )
    });
    PathBuf::from(dir)
}

/// etcd + kube-apiserver, stopped on drop.
pub struct KubeApi {
    etcd: Child,
    apiserver: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub async fn start() -> KubeApi {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let log = |name: &str| std::fs::File::create(d.join(name)).expect("log file");
        let etcd = Command::new(bin.join("etcd"))
            .args([
                "--data-dir",
                &d.join("etcd").display().to_string(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client_port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer_port}"),
                "--quota-backend-bytes",
                "4294967296",
            ])
            .stdout(Stdio::null())
            .stderr(log("etcd.log"))
            .spawn()
            .expect("etcd starts");
        let sa_key = d.join("sa.key");
        let sa_pub = d.join("sa.pub");
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&sa_key)
            .arg("-out")
            .arg(&sa_pub));
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        )
        .expect("token file");
        std::fs::create_dir_all(d.join("certs")).expect("cert dir");
        let apiserver = Command::new(bin.join("kube-apiserver"))
            .arg(format!("--etcd-servers=http://127.0.0.1:{client_port}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={api_port}"))
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key.display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .stdout(Stdio::null())
            .stderr(log("apiserver.log"))
            .spawn()
            .expect("kube-apiserver starts");
        let api = KubeApi {
            etcd,
            apiserver,
            url: format!("https://127.0.0.1:{api_port}"),
            dir,
        };
        let client = api.client(ADMIN_TOKEN);
        let started = Instant::now();
        loop {
            let ready = client
                .request_text(
                    http::Request::get("/readyz")
                        .body(Vec::new())
                        .expect("request"),
                )
                .await;
            if matches!(ready.as_deref(), Ok("ok")) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kube-apiserver not ready after 60 s ({ready:?}); see {}",
                api.dir.path().join("apiserver.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        api
    }

    /// A client authenticated with `token`.
    pub fn client(&self, token: &str) -> Client {
        let mut config = Config::new(self.url.parse().expect("url"));
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(token.to_owned().into());
        config.default_namespace = "default".to_owned();
        Client::try_from(config).expect("client")
    }

    /// Process ids of etcd and kube-apiserver (for CPU accounting in the scale bench).
    pub fn pids(&self) -> (u32, u32) {
        (self.etcd.id(), self.apiserver.id())
    }

    /// Kills kube-apiserver (etcd stays), as an outage of the control plane.
    pub fn stop_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
    }

    /// The admin client.
    pub fn admin(&self) -> Client {
        self.client(ADMIN_TOKEN)
    }

    /// Installs Ferry's CRDs (from the api crate, as `crds/` holds them) and waits until each is
    /// established.
    pub async fn install_crds(&self) {
        let api: Api<CustomResourceDefinition> = Api::all(self.admin());
        for crd in ferry_api::crds::all() {
            api.patch(
                crd.metadata.name.as_deref().expect("named"),
                &PatchParams::apply("ferry-e2e").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("CRD applied");
        }
        for crd in ferry_api::crds::all() {
            let name = crd.metadata.name.clone().expect("named");
            eventually(
                &format!("CRD {name} established"),
                Duration::from_secs(30),
                || {
                    let api = api.clone();
                    let name = name.clone();
                    async move {
                        let crd = api.get(&name).await.ok()?;
                        crd.status?
                            .conditions?
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                            .then_some(())
                    }
                },
            )
            .await;
        }
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.admin());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.to_owned());
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("namespace {name}: {e}"),
        }
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `f` every 100 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The data plane and the operator, in this process.
pub struct Ferry {
    pub log: ferry_broker::RunningBroker,
    pub bootstrap: String,
    pub dispatcher: ferry_dispatcher::RunningDispatcher,
    pub ingress: SocketAddr,
    pub admin: SocketAddr,
    pub operator_metrics: SocketAddr,
    pub namespace: String,
    stop: watch::Sender<bool>,
    operator: tokio::task::JoinHandle<ferry_operator::Result<()>>,
    sync: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// What [`Ferry::start`] varies.
pub struct FerryOptions {
    /// The namespace of the Lease and the contract Secret.
    pub namespace: String,
    /// The operator's client (the admin, or the chart's ServiceAccount).
    pub client: Client,
    /// Extra operator arguments.
    pub args: Vec<String>,
    /// How often the test plays the kubelet, copying the contract Secret into the dispatcher's
    /// mounted file; `None`: never (a kubelet that has not synced yet), so the dispatcher has
    /// only its watch of the Secret.
    pub mount_sync: Option<Duration>,
    /// The dispatcher's client for its watch of the contract Secret; `None`: the admin.
    pub dispatcher_client: Option<Client>,
}

impl Ferry {
    /// [`Ferry::start`] with the operator in `ferry-system`, an admin client and no extra
    /// flags.
    pub async fn start_default(kube: &KubeApi) -> Ferry {
        Ferry::start(
            kube,
            FerryOptions {
                namespace: "ferry-system".into(),
                client: kube.admin(),
                args: vec![],
                mount_sync: Some(Duration::from_millis(100)),
                dispatcher_client: None,
            },
        )
        .await
    }

    /// Starts the embedded log, a dispatcher that watches the contract Secret (as the chart's
    /// do) and whose contract file follows it as [`FerryOptions::mount_sync`] says, and the
    /// operator.
    pub async fn start(kube: &KubeApi, options: FerryOptions) -> Ferry {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = ferry_broker::Broker::start(
            ferry_broker::BrokerConfig::local(&dir.path().join("log"), &[]).expect("log flags"),
        )
        .await
        .expect("log starts");
        let bootstrap = log.kafka_addr.to_string();
        // The contract Secret's mount as the chart's dispatchers see it: a directory holding
        // the chart's seed until the operator's key appears.
        let contract_path = dir.path().join("contract");
        std::fs::create_dir(&contract_path).expect("contract mount");
        std::fs::write(
            contract_path.join(ferry_api::contract::SEED_KEY),
            serde_json::to_vec(&Contract::default()).expect("json"),
        )
        .expect("contract file");
        let mut config = ferry_dispatcher::config::DispatcherConfig::new(
            contract_path.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:0".parse().expect("addr"),
        );
        config.role = ferry_dispatcher::config::Role::All;
        config.contract_poll = Duration::from_millis(100);
        config.contract_secret = Some(
            format!("{}/ferry-contract", options.namespace)
                .parse()
                .expect("secret reference"),
        );
        let dispatcher = ferry_dispatcher::start_with_kube(
            config,
            Some(options.dispatcher_client.unwrap_or_else(|| kube.admin())),
        )
        .await
        .expect("dispatcher starts");
        let ingress = dispatcher.http_addr.expect("ingress listens");
        let admin = dispatcher.admin_addr;

        let sync = tokio::spawn(mount_contract(
            Api::namespaced(kube.admin(), &options.namespace),
            contract_path,
            options.mount_sync,
        ));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let operator_metrics = listener.local_addr().expect("addr");
        let mut argv: Vec<String> = vec![
            "ferry-operator".into(),
            format!("--leader-election-namespace={}", options.namespace),
            format!("--ingress-url=http://{ingress}"),
            format!("--dispatcher-admin-url=http://{admin}"),
            format!("--kafka-bootstrap-servers={bootstrap}"),
            "--default-partitions=2".into(),
            "--dispatcher-poll=200ms".into(),
            "--identity=e2e-operator".into(),
        ];
        argv.extend(options.args);
        let args = <ferry_operator::args::Args as clap::Parser>::parse_from(argv);
        let (stop, stopping) = watch::channel(false);
        let operator = tokio::spawn(ferry_operator::app::run(
            options.client,
            args,
            listener,
            stopping,
        ));
        Ferry {
            log,
            bootstrap,
            dispatcher,
            ingress,
            admin,
            operator_metrics,
            namespace: options.namespace,
            stop,
            operator,
            sync,
            _dir: dir,
        }
    }

    /// Stops the operator (it releases its Lease) and returns its result.
    pub async fn stop_operator(&mut self) -> ferry_operator::Result<()> {
        let _ = self.stop.send(true);
        (&mut self.operator).await.expect("operator task")
    }

    /// The operator's `/metrics` text.
    pub async fn operator_metrics(&self) -> String {
        http_get(self.operator_metrics, "/metrics").await
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.sync.abort();
    }
}

/// Plays the kubelet: copies each key of the contract Secret (gzip or plain JSON, as bytes) into
/// a file of that name in the dispatcher's contract directory whenever it changes, checking
/// `every` (never when `None`).
async fn mount_contract(api: Api<Secret>, dir: PathBuf, every: Option<Duration>) {
    let Some(every) = every else { return };
    let mut last = std::collections::BTreeMap::new();
    loop {
        if let Ok(Some(secret)) = api.get_opt("ferry-contract").await {
            for (key, bytes) in secret.data.unwrap_or_default() {
                if last.get(&key) != Some(&bytes.0) {
                    write_atomically(&dir.join(&key), &bytes.0);
                    last.insert(key, bytes.0);
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write contract");
    std::fs::rename(&tmp, path).expect("swap contract");
}

/// A plain HTTP/1.1 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}
