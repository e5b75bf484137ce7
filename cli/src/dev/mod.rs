//! `ferry dev`: the whole flow on one machine. It loads Knative manifests, runs the embedded
//! broker (or uses `--kafka`), the dispatcher and each Service revision as local processes (one
//! per container of each replica), compiles the contract with the operator's function whenever
//! something changes, and prints what runs where.
//!
//! One reconcile loop does it all, as the operator does in a cluster: it reads the manifests
//! (again when a file changes), creates revisions for changed templates, supervises their
//! processes, resolves traffic, compiles and writes the contract the dispatcher follows, and
//! reports readiness. A Service's `ref` resolves only while its traffic's revisions answer, so
//! the dispatcher never delivers to a revision that is not there: its Triggers' events wait in
//! the log (at their committed offsets) until it is.

mod conditions;
mod dataplane;
mod desired;
mod observe;
mod process;
mod proxy;
mod replica;
mod revisions;
mod row;
mod runtime;
mod scale;
mod serving;
mod table;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_api::autoscaler::Settings;
use ferry_api::contract::{CompileError, Contract, Resolved};
use ferry_api::duck::KReference;
use ferry_api::serving::features::TAG_HEADER_ROUTING;
use ferry_control::activation;

use crate::Error;

pub use desired::{Desired, load};

use conditions::World;
use dataplane::DataPlane;
use desired::AddressKind;
use serving::Serving;
use table::Report;

/// How often the loop reconciles.
const TICK: Duration = Duration::from_millis(250);
/// How often manifest files are checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `ferry dev`'s settings (its command-line flags).
#[derive(clap::Args, Clone, Debug)]
pub struct DevOptions {
    /// A manifest file, or a directory of *.yaml / *.yml files (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Where Brokers and KafkaChannels take events.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub ingress: SocketAddr,
    /// Where the dispatcher serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub admin: SocketAddr,
    /// Where the log, contract, revisions and status.json are kept.
    #[arg(long, default_value = ".ferry")]
    pub data_dir: PathBuf,
    /// Use this Kafka cluster (bootstrap servers) instead of the embedded broker.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Where the embedded broker takes Kafka clients (`ferry tail` uses 127.0.0.1:9092).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
    /// Partitions of the topics created for Brokers and KafkaChannels.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub partitions: i32,
    /// Knative's `config-autoscaler` ConfigMap (a manifest, or a YAML map of its keys) for
    /// the autoscaler's cluster defaults, e.g. `scale-to-zero-grace-period: 10s`.
    #[arg(long)]
    pub autoscaler_config: Option<PathBuf>,
    /// How often the autoscaler samples and decides (Knative's tick is 2s), 100ms to 1m.
    #[arg(long, default_value = "2s", value_parser = autoscale_tick)]
    pub autoscale_tick: Duration,
    /// Old spelling of `--autoscale-tick`, in milliseconds.
    #[arg(long, hide = true, value_parser = ferry_runtime::duration::parse_millis)]
    pub autoscale_tick_ms: Option<Duration>,
    /// Colour in the table (set when stdout is a terminal).
    #[arg(skip)]
    pub color: bool,
}

fn autoscale_tick(text: &str) -> Result<Duration, String> {
    let d = ferry_runtime::duration::parse(text)?;
    if (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&d) {
        Ok(d)
    } else {
        Err(format!("`{text}` is outside 100ms..1m"))
    }
}

/// Reads `--autoscaler-config`: a ConfigMap manifest (its `data`) or a map of keys.
fn autoscaler_settings(path: Option<&std::path::Path>) -> crate::Result<Settings> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let fail = |why: String| Error::ManifestsInvalid(vec![format!("{}: {why}", path.display())]);
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it ({e})")))?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| fail(format!("is not valid YAML: {e}")))?;
    let data = value.get("data").cloned().unwrap_or(value);
    let map: BTreeMap<String, String> = serde_yaml::from_value(data).map_err(|e| {
        fail(format!(
            "is not a ConfigMap or a map of config-autoscaler keys to string values: {e}"
        ))
    })?;
    Settings::from_config_map(&map).map_err(|e| fail(e.to_string()))
}

/// `ferry dev`: runs until Ctrl-C or SIGTERM. Exit 0 when stopped so, 1 when the manifests
/// cannot run, 3 when a component cannot start.
pub fn command(mut options: DevOptions) -> std::process::ExitCode {
    options.color = std::io::stdout().is_terminal();
    // The broker's and dispatcher's own logs: warnings and errors (a dropped event is an
    // error naming its id) unless RUST_LOG says otherwise.
    ferry_runtime::logging::init("warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return Error::Runtime(e).report("dev"),
    };
    match runtime.block_on(run(options, ferry_runtime::shutdown::signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => e.report("dev"),
    }
}

/// Runs until `shutdown` completes, then stops everything cleanly: the dispatcher drains and
/// commits, revisions get SIGTERM, the broker syncs its log.
///
/// # Errors
/// [`Error::ManifestsInvalid`] when the manifests cannot run, [`Error::DevStart`] when a
/// component cannot start.
pub async fn run(
    options: DevOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> crate::Result<()> {
    let (mut dev, lock) = Dev::start(options).await?;
    // One line naming the listeners first (scripts and tests read it), then the table.
    println!(
        "ferry dev listening ingress={} kafka={} admin={} data={}",
        dev.plane.ingress_base.trim_start_matches("http://"),
        dev.plane.bootstrap,
        dev.plane.dispatcher.admin_addr,
        dev.options.data_dir.display()
    );
    println!("ferry dev: Ctrl-C stops; the table below follows every change");
    tokio::pin!(shutdown);
    let mut fingerprint = desired::fingerprint(&dev.options.files);
    let mut checked = Instant::now();
    loop {
        dev.reconcile().await;
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(TICK) => {}
        }
        if checked.elapsed() >= RELOAD_EVERY {
            checked = Instant::now();
            let now = desired::fingerprint(&dev.options.files);
            if now != fingerprint {
                fingerprint = now;
                dev.reload();
            }
        }
    }
    println!("ferry dev: stopping (draining deliveries, stopping revisions, syncing the log)");
    dev.plane.shutdown_with(dev.serving).await;
    println!("ferry dev: stopped");
    drop(lock);
    Ok(())
}

/// Takes the data directory for this `ferry dev`: a second one would overwrite the first's
/// contract.
fn lock_data_dir(data_dir: &std::path::Path) -> crate::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Error::DevStart(format!(
            "cannot create the data directory {} ({e}); pass --data-dir",
            data_dir.display()
        ))
    })?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("lock"))
        .map_err(|e| Error::DevStart(format!("cannot open {}/lock ({e})", data_dir.display())))?;
    if lock.try_lock().is_err() {
        return Err(Error::DevStart(format!(
            "another ferry dev is using {}; stop it, or pass a different --data-dir",
            data_dir.display()
        )));
    }
    Ok(lock)
}

/// One reconcile loop, as the operator's controllers in a cluster: manifests in; revisions,
/// topics, the contract and the table out.
struct Dev {
    options: DevOptions,
    desired: Desired,
    serving: Serving,
    plane: DataPlane,
    /// Objects the last compile left out, and why.
    errors: Vec<CompileError>,
    report: Report,
}

impl Dev {
    async fn start(options: DevOptions) -> crate::Result<(Dev, std::fs::File)> {
        let desired = load(&options.files).map_err(Error::ManifestsInvalid)?;
        let autoscaling = autoscaler_settings(options.autoscaler_config.as_deref())?;
        let lock = lock_data_dir(&options.data_dir)?;
        let plane = DataPlane::start(&options).await?;
        let tick = options.autoscale_tick_ms.unwrap_or(options.autoscale_tick);
        let serving = Serving::new(
            options.data_dir.join("revisions.json"),
            autoscaling,
            tick,
            plane.dispatcher.activator(),
            plane.dispatcher.gateway(),
        )
        .map_err(Error::DevStart)?;
        let dev = Dev {
            report: Report::new(options.color),
            options,
            desired,
            serving,
            plane,
            errors: Vec::new(),
        };
        Ok((dev, lock))
    }

    fn reload(&mut self) {
        match load(&self.options.files) {
            Ok(desired) => {
                println!("ferry dev: manifests changed; applying them");
                self.desired = desired;
            }
            Err(problems) => {
                eprintln!(
                    "ferry dev: manifests changed but are invalid; the last good ones stay in force:"
                );
                for p in problems {
                    eprintln!("  {p}");
                }
            }
        }
    }

    async fn reconcile(&mut self) {
        self.serving.domains = self.desired.domains();
        self.serving.reconcile(&self.desired.services).await;
        self.serving.autoscale();
        let (mut contract, errors) = self.compile();
        contract.routes = self.serving.http_routes();
        contract.tag_header_routing = self.desired.features().enabled(TAG_HEADER_ROUTING);
        contract.tracing = self.desired.tracing();
        let mut routed = activation::routed_urls(&contract);
        routed.extend(self.serving.routed_urls());
        contract.activation = activation::activation(self.serving.replicas(), &routed);
        self.errors = errors;
        let embedded = self.options.kafka.is_none();
        self.plane
            .ensure_topics(&self.desired, self.options.partitions, embedded)
            .await;
        self.plane.publish(contract);
        let world = World {
            desired: &self.desired,
            contract: &self.plane.contract,
            errors: &self.errors,
            applied: self.plane.applied(),
            topics: &self.plane.topics,
            ingress_base: &self.plane.ingress_base,
            serving: &self.serving,
        };
        let status_path = self.options.data_dir.join("status.json");
        self.report
            .show(&world, &self.plane.bootstrap, &status_path);
    }

    fn resolve(&self, r: &KReference) -> Option<Resolved> {
        let ns = r
            .namespace
            .as_deref()
            .unwrap_or(crate::manifest::DEFAULT_NAMESPACE);
        match self.desired.address_kind(r)? {
            AddressKind::Ingress => Some(Resolved::Url(ferry_control::status::ingress_url(
                &self.plane.ingress_base,
                ns,
                &r.name,
            ))),
            AddressKind::Service => self
                .serving
                .ready_targets(&format!("{ns}/{}", r.name))
                .map(Resolved::Revisions),
        }
    }

    fn compile(&self) -> (Contract, Vec<CompileError>) {
        let resolve = |r: &KReference| self.resolve(r);
        self.desired.compile(
            self.plane.contract.generation,
            &self.plane.bootstrap,
            &resolve,
        )
    }
}
