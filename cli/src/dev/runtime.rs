//! The local revision runtime: each revision runs as a process from its container's
//! `command`/`args`/`env`, with `PORT` set, supervised like a Deployment's pod (restarted with
//! backoff when it exits) and probed like Knative's default readiness probe (a TCP connect).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a stopping revision gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Longest wait before restarting a revision that keeps exiting.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);

/// What a revision process runs: resolved from the revision's only container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program and arguments (`command` followed by `args`).
    pub argv: Vec<String>,
    /// Environment on top of ferry dev's own (`PORT` and `K_*` are added by the runtime).
    pub env: BTreeMap<String, String>,
    /// Working directory (`workingDir`), relative to where ferry dev runs.
    pub working_dir: Option<PathBuf>,
}

/// What the runtime knows about one revision's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessState {
    /// `http://127.0.0.1:<port>`: where the revision listens (stable across restarts).
    pub url: String,
    /// The process answers on its port.
    pub ready: bool,
    /// The running process's id.
    pub pid: Option<u32>,
    /// Times the process was restarted after exiting.
    pub restarts: u32,
    /// Why it is not ready, when it is not.
    pub reason: Option<String>,
    /// Why it last failed (could not start, or exited), until it answers again.
    pub failure: Option<String>,
}

struct Supervised {
    state: Arc<Mutex<ProcessState>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How long a replica taken out of the endpoints keeps running, so deliveries the dispatcher
/// already sent it finish before it gets SIGTERM.
const DRAIN: Duration = Duration::from_secs(2);

/// One revision: what its replicas run, and the replicas.
struct Revision {
    /// The command, with `K_*` set (each replica adds its `PORT`).
    spec: ProcessSpec,
    replicas: Vec<Supervised>,
    /// Replicas out of the endpoints, stopped once `DRAIN` has passed.
    draining: Vec<(Supervised, Instant)>,
    /// Replica numbers for log prefixes.
    started: u32,
}

/// The revisions the runtime knows, by name, each scaled 0..N.
#[derive(Default)]
pub struct Runtime {
    revisions: BTreeMap<String, Revision>,
}

/// Identity of a revision, passed to its process as Knative does (`K_SERVICE`, …).
pub struct RevisionIdentity<'a> {
    /// Revision name.
    pub revision: &'a str,
    /// Its configuration.
    pub configuration: &'a str,
    /// Its service.
    pub service: &'a str,
}

/// A revision as the table shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionState {
    /// Each replica (not draining).
    pub replicas: Vec<ProcessState>,
}

impl RevisionState {
    /// URLs of the replicas that answer.
    pub fn endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.ready)
            .map(|r| r.url.clone())
            .collect()
    }
}

impl Runtime {
    /// Registers `id.revision` with what its replicas run (revisions are immutable: one that
    /// is known keeps its spec). It starts with no replica; [`Runtime::scale`] adds them.
    pub fn define(&mut self, id: &RevisionIdentity<'_>, spec: &ProcessSpec) {
        self.revisions
            .entry(id.revision.to_owned())
            .or_insert_with(|| {
                let mut env = spec.env.clone();
                env.insert("K_REVISION".into(), id.revision.to_owned());
                env.insert("K_CONFIGURATION".into(), id.configuration.to_owned());
                env.insert("K_SERVICE".into(), id.service.to_owned());
                Revision {
                    spec: ProcessSpec {
                        env,
                        ..spec.clone()
                    },
                    replicas: Vec::new(),
                    draining: Vec::new(),
                    started: 0,
                }
            });
    }

    /// Runs `replicas` replicas of a defined revision: starts new ones, or takes the newest out
    /// of the endpoints to stop them after [`DRAIN`]. Returns whether anything changed.
    ///
    /// # Errors
    /// No free port could be found.
    pub fn scale(&mut self, revision: &str, replicas: usize) -> std::io::Result<bool> {
        let Some(r) = self.revisions.get_mut(revision) else {
            return Ok(false);
        };
        let before = r.replicas.len();
        while r.replicas.len() < replicas {
            r.started += 1;
            let name = format!("{revision}#{}", r.started);
            r.replicas.push(start_replica(&name, &r.spec)?);
        }
        while r.replicas.len() > replicas {
            if let Some(s) = r.replicas.pop() {
                r.draining.push((s, Instant::now()));
            }
        }
        Ok(before != r.replicas.len())
    }

    /// Stops replicas that have drained.
    pub fn reap(&mut self) {
        for r in self.revisions.values_mut() {
            let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut r.draining)
                .into_iter()
                .partition(|(_, since)| since.elapsed() >= DRAIN);
            r.draining = keep;
            for (s, _) in done {
                let _ = s.stop.send(true);
            }
        }
    }

    /// The state of every revision the runtime knows.
    pub fn states(&self) -> BTreeMap<String, RevisionState> {
        self.revisions
            .keys()
            .filter_map(|name| Some((name.clone(), self.state(name)?)))
            .collect()
    }

    /// The state of one revision.
    pub fn state(&self, revision: &str) -> Option<RevisionState> {
        let r = self.revisions.get(revision)?;
        let replicas = r.replicas.iter().map(|s| lock(&s.state).clone()).collect();
        Some(RevisionState { replicas })
    }

    /// Stops every replica of the revisions not in `keep` (SIGTERM, SIGKILL after a grace
    /// period) and forgets them.
    pub async fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .revisions
            .keys()
            .filter(|name| !keep(name))
            .cloned()
            .collect();
        let mut tasks = Vec::new();
        for name in gone {
            if let Some(r) = self.revisions.remove(&name) {
                let all = r
                    .replicas
                    .into_iter()
                    .chain(r.draining.into_iter().map(|(s, _)| s));
                for s in all {
                    let _ = s.stop.send(true);
                    tasks.push(s.task);
                }
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Stops every revision.
    pub async fn shutdown(&mut self) {
        self.retain(&|_| false).await;
    }
}

/// Starts one supervised replica on a free port.
fn start_replica(name: &str, spec: &ProcessSpec) -> std::io::Result<Supervised> {
    let port = free_port()?;
    let state = Arc::new(Mutex::new(ProcessState {
        url: format!("http://127.0.0.1:{port}"),
        ready: false,
        pid: None,
        restarts: 0,
        reason: Some("starting".to_owned()),
        failure: None,
    }));
    let mut process = spec.clone();
    process.env.insert("PORT".into(), port.to_string());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(supervise(
        name.to_owned(),
        process,
        SocketAddr::from(([127, 0, 0, 1], port)),
        state.clone(),
        stopped,
    ));
    Ok(Supervised { state, stop, task })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port that is free now on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn supervise(
    name: String,
    spec: ProcessSpec,
    addr: SocketAddr,
    state: Arc<Mutex<ProcessState>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut child = match spawn(&name, &spec) {
            Ok(child) => child,
            Err(e) => {
                let reason = format!("cannot start {:?}: {e}", spec.argv.join(" "));
                eprintln!("[{name}] {reason}");
                {
                    let mut s = lock(&state);
                    s.reason = Some(reason.clone());
                    s.failure = Some(reason);
                }
                if wait_or_stop(&mut stopped, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
                continue;
            }
        };
        {
            let mut s = lock(&state);
            s.pid = child.id();
            s.reason = Some("starting".to_owned());
        }
        let exit = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                _ = stopped.changed() => break None,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    let up = tokio::net::TcpStream::connect(addr).await.is_ok();
                    let mut s = lock(&state);
                    if up && !s.ready {
                        eprintln!("[{name}] ready on {}", s.url);
                        backoff = Duration::from_secs(1);
                    }
                    s.ready = up;
                    s.reason = (!up).then(|| "not answering on its port yet".to_owned());
                    if up {
                        s.failure = None;
                    }
                }
            }
        };
        {
            let mut s = lock(&state);
            s.ready = false;
            s.pid = None;
        }
        let Some(status) = exit else {
            stop(&name, &mut child).await;
            return;
        };
        let reason = match status {
            Ok(s) => format!("exited ({s}); restarting in {}s", backoff.as_secs()),
            Err(e) => format!("could not be waited for ({e})"),
        };
        eprintln!("[{name}] {reason}");
        {
            let mut s = lock(&state);
            s.reason = Some(reason.clone());
            s.failure = Some(reason);
            s.restarts += 1;
        }
        if wait_or_stop(&mut stopped, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
    }
}

/// Sleeps `delay`; `true` when told to stop meanwhile.
async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = stopped.changed() => true,
        () = tokio::time::sleep(delay) => *stopped.borrow(),
    }
}

fn spawn(name: &str, spec: &ProcessSpec) -> std::io::Result<Child> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    // Its own process group: Ctrl-C in the terminal reaches ferry dev only, which drains
    // deliveries first and then stops the revisions (and anything they started).
    command.as_std_mut().process_group(0);
    let mut child = command.spawn()?;
    for (stream, out) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead>),
            true,
        ),
    ] {
        if let Some(stream) = stream {
            let name = name.to_owned();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if out {
                        eprintln!("[{name}] {line}");
                    } else {
                        println!("[{name}] {line}");
                    }
                }
            });
        }
    }
    Ok(child)
}

trait AsyncRead: tokio::io::AsyncRead + Send + Unpin {}
impl<T: tokio::io::AsyncRead + Send + Unpin> AsyncRead for T {}

/// SIGTERM to the process group, SIGKILL after [`STOP_GRACE`].
async fn stop(name: &str, child: &mut Child) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        eprintln!(
            "[{name}] still running {}s after SIGTERM; killing it",
            STOP_GRACE.as_secs()
        );
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}
