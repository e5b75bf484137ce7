//! One revision replica as a local process, run from its container's `command`/`args`/`env`
//! with `PORT` set, supervised like a pod (restarted with backoff when it exits) and probed like
//! Knative's default readiness probe (a TCP connect).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A replica under supervision: its state, and how to stop it.
pub struct Supervised {
    /// What is known of it.
    pub state: Arc<Mutex<ProcessState>>,
    /// Set to stop it (SIGTERM, then SIGKILL after the grace).
    pub stop: watch::Sender<bool>,
    /// The supervising task.
    pub task: JoinHandle<()>,
}

/// Starts one supervised replica on a free port.
pub fn start_replica(name: &str, spec: &ProcessSpec) -> std::io::Result<Supervised> {
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

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
