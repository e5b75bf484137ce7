//! One container of a revision replica as a local process, run from its `command`/`args`/`env`,
//! supervised like a pod's container (restarted with backoff when it exits) and probed like
//! Knative probes it: the serving container with a TCP connect on its `PORT` (Knative's default
//! readiness probe), a sidecar by running.

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

/// How long a stopping process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Longest wait before restarting a process that keeps exiting.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);
/// How long a sidecar (ready while it runs) must run before its restart backoff starts over.
const SIDECAR_SETTLED: Duration = Duration::from_secs(10);
/// How often a running process is probed.
const PROBE_EVERY: Duration = Duration::from_millis(200);

/// What a container's process runs: resolved from the container's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program and arguments (`command` followed by `args`).
    pub argv: Vec<String>,
    /// Environment on top of ferry dev's own, which never passes its `PORT` on: the runtime
    /// sets `PORT` for the serving container and `K_*` for all; a sidecar sees a `PORT` only
    /// when its own `env` lists one.
    pub env: BTreeMap<String, String>,
    /// Working directory (`workingDir`), relative to where ferry dev runs.
    pub working_dir: Option<PathBuf>,
}

/// How a process shows it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// It accepts a TCP connection on this address (the serving container).
    Answers(SocketAddr),
    /// It runs (a sidecar).
    Runs,
}

impl Readiness {
    /// Whether a process that is running is ready now.
    async fn probe(self) -> bool {
        match self {
            Readiness::Answers(addr) => {
                tokio::time::timeout(PROBE_EVERY, tokio::net::TcpStream::connect(addr))
                    .await
                    .is_ok_and(|c| c.is_ok())
            }
            Readiness::Runs => true,
        }
    }

    /// Whether a process that has been ready for `ready_for` has shown it starts, so its next
    /// restart waits the shortest backoff again.
    fn settled(self, ready_for: Duration) -> bool {
        match self {
            Readiness::Answers(_) => true,
            Readiness::Runs => ready_for >= SIDECAR_SETTLED,
        }
    }

    /// What the log says when the process becomes ready.
    fn ready_message(self) -> String {
        match self {
            Readiness::Answers(addr) => format!("ready on http://{addr}"),
            Readiness::Runs => "running".to_owned(),
        }
    }

    /// Why a running process is not ready yet.
    fn waiting_reason(self) -> &'static str {
        match self {
            Readiness::Answers(_) => "not answering on its port yet",
            Readiness::Runs => "starting",
        }
    }
}

/// What the runtime knows about one container's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessState {
    /// The process is ready ([`Readiness`]).
    pub ready: bool,
    /// The running process's id.
    pub pid: Option<u32>,
    /// Times the process was restarted after exiting.
    pub restarts: u32,
    /// Why it is not ready, when it is not.
    pub reason: Option<String>,
    /// Why it last failed (could not start, or exited), until it is ready again.
    pub failure: Option<String>,
}

/// A process under supervision: its state, and how to stop it.
pub struct Supervised {
    /// What is known of it.
    pub state: Arc<Mutex<ProcessState>>,
    /// Set to stop it (SIGTERM, then SIGKILL after the grace).
    pub stop: watch::Sender<bool>,
    /// The supervising task.
    pub task: JoinHandle<()>,
}

impl Supervised {
    /// Starts `spec` under supervision; `name` prefixes its log lines.
    pub fn start(name: &str, spec: &ProcessSpec, readiness: Readiness) -> Supervised {
        let state = Arc::new(Mutex::new(ProcessState {
            ready: false,
            pid: None,
            restarts: 0,
            reason: Some("starting".to_owned()),
            failure: None,
        }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(
            name.to_owned(),
            spec.clone(),
            readiness,
            state.clone(),
            stopped,
        ));
        Supervised { state, stop, task }
    }
}

/// Locks `m`, also when a panicking holder poisoned it (the state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port that is free now on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the process until told to stop, restarting it with backoff whenever it exits or
/// cannot start.
async fn supervise(
    name: String,
    spec: ProcessSpec,
    readiness: Readiness,
    state: Arc<Mutex<ProcessState>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let reason = match spawn(&name, &spec) {
            Err(e) => format!("cannot start {:?}: {e}", spec.argv.join(" ")),
            Ok(mut child) => {
                {
                    let mut s = lock(&state);
                    s.pid = child.id();
                    s.reason = Some("starting".to_owned());
                }
                let exit = watch_running(
                    &name,
                    &mut child,
                    readiness,
                    &state,
                    &mut stopped,
                    &mut backoff,
                )
                .await;
                {
                    let mut s = lock(&state);
                    s.ready = false;
                    s.pid = None;
                }
                let Some(status) = exit else {
                    stop(&name, &mut child).await;
                    return;
                };
                lock(&state).restarts += 1;
                match status {
                    Ok(s) => format!("exited ({s}); restarting in {}s", backoff.as_secs()),
                    Err(e) => format!("could not be waited for ({e})"),
                }
            }
        };
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
    }
}

/// Probes a running process until it exits (`Some`, how) or is told to stop (`None`); once it
/// has shown it starts ([`Readiness::settled`]) its restart `backoff` starts over.
async fn watch_running(
    name: &str,
    child: &mut Child,
    readiness: Readiness,
    state: &Mutex<ProcessState>,
    stopped: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Option<std::io::Result<std::process::ExitStatus>> {
    let mut ready_since: Option<Instant> = None;
    loop {
        tokio::select! {
            status = child.wait() => return Some(status),
            _ = stopped.changed() => return None,
            () = tokio::time::sleep(PROBE_EVERY) => {
                let up = readiness.probe().await;
                match (up, ready_since) {
                    (false, _) => ready_since = None,
                    (true, None) => {
                        eprintln!("[{name}] {}", readiness.ready_message());
                        ready_since = Some(Instant::now());
                    }
                    (true, Some(_)) => {}
                }
                if ready_since.is_some_and(|t| readiness.settled(t.elapsed())) {
                    *backoff = Duration::from_secs(1);
                }
                let mut s = lock(state);
                s.ready = up;
                s.reason = (!up).then(|| readiness.waiting_reason().to_owned());
                if up {
                    s.failure = None;
                }
            }
        }
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
        .env_remove("PORT")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A sidecar is ready as soon as it runs, but a sidecar that keeps exiting soon after is
    /// restarted with a growing backoff (as a pod's container in CrashLoopBackOff), not every
    /// second.
    #[tokio::test]
    async fn a_sidecar_that_keeps_exiting_backs_off() {
        let spec = ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), "sleep 0.5; exit 3".into()],
            env: BTreeMap::new(),
            working_dir: None,
        };
        let process = Supervised::start("test/sidecar", &spec, Readiness::Runs);
        let mut was_ready = false;
        let mut restarted_twice = None;
        for _ in 0..100 {
            let s = lock(&process.state).clone();
            was_ready |= s.ready;
            if s.restarts == 2 {
                restarted_twice = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = restarted_twice.expect("restarted twice within 5s");
        assert!(was_ready, "ready while it ran");
        assert!(!s.ready);
        assert_eq!(
            s.failure.as_deref(),
            Some("exited (exit status: 3); restarting in 2s")
        );
        let _ = process.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), process.task)
            .await
            .expect("stops")
            .unwrap();
    }

    #[test]
    fn only_a_sidecar_that_ran_a_while_has_shown_it_starts() {
        let port = Readiness::Answers(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(port.settled(Duration::ZERO));
        assert!(!Readiness::Runs.settled(Duration::from_secs(1)));
        assert!(Readiness::Runs.settled(SIDECAR_SETTLED));
    }
}
