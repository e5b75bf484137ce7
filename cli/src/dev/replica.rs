//! One revision replica, as a pod of local processes: each container of the revision runs as
//! its own supervised process (`process.rs`). The serving container gets `PORT` on a free port
//! and is ready once it answers there; each sidecar runs beside it and is ready while it runs.
//! The replica is ready when all of its containers are, and stops as a whole.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

use super::process::{ProcessSpec, ProcessState, Readiness, Supervised, free_port, lock};

/// One container of a replica: its name (Knative's, defaulted) and what it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name.
    pub name: String,
    /// Its process.
    pub process: ProcessSpec,
}

/// What every replica of a revision runs: the container that serves (the one listing a port)
/// and its sidecars, in the order the revision lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// The container requests go to.
    pub serving: ContainerSpec,
    /// The containers that run beside it.
    pub sidecars: Vec<ContainerSpec>,
}

impl ReplicaSpec {
    /// Sets `name` to `value` in every container's environment.
    pub fn set_env(&mut self, name: &str, value: &str) {
        for c in std::iter::once(&mut self.serving).chain(&mut self.sidecars) {
            c.process.env.insert(name.to_owned(), value.to_owned());
        }
    }
}

/// A running replica: its address and its containers' processes, the serving one first.
pub struct Replica {
    /// `http://127.0.0.1:<port>`: where its serving container listens (stable across
    /// restarts).
    pub url: String,
    /// `(container name, process)`, the serving container first.
    containers: Vec<(String, Supervised)>,
}

impl Replica {
    /// Starts every container of `spec` as a replica called `name` (e.g. `cart-00001#1`, the
    /// prefix of its log lines; a sidecar's lines add `/<container>`).
    ///
    /// # Errors
    /// No free port could be found for the serving container.
    pub fn start(name: &str, spec: &ReplicaSpec) -> std::io::Result<Replica> {
        let port = free_port()?;
        let mut serving = spec.serving.process.clone();
        serving.env.insert("PORT".into(), port.to_string());
        // Locally, replicas answer on loopback only (in a pod they listen on every interface).
        serving
            .env
            .entry("LISTEN_HOST".into())
            .or_insert_with(|| "127.0.0.1".into());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut containers = vec![(
            spec.serving.name.clone(),
            Supervised::start(name, &serving, Readiness::Answers(addr)),
        )];
        for sidecar in &spec.sidecars {
            let prefix = format!("{name}/{}", sidecar.name);
            let process = Supervised::start(&prefix, &sidecar.process, Readiness::Runs);
            containers.push((sidecar.name.clone(), process));
        }
        Ok(Replica {
            url: format!("http://{addr}"),
            containers,
        })
    }

    /// What its containers do now.
    pub fn state(&self) -> ReplicaState {
        let containers: Vec<(String, ProcessState)> = self
            .containers
            .iter()
            .map(|(name, s)| (name.clone(), lock(&s.state).clone()))
            .collect();
        ReplicaState::of(&self.url, &containers)
    }

    /// Tells every container to stop (SIGTERM, SIGKILL after a grace period); returns the
    /// tasks that finish once they have.
    pub fn stop(self) -> Vec<JoinHandle<()>> {
        self.containers
            .into_iter()
            .map(|(_, s)| {
                let _ = s.stop.send(true);
                s.task
            })
            .collect()
    }
}

/// What the runtime shows of one replica, summed over its containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// Where its serving container listens.
    pub url: String,
    /// Every container is ready.
    pub ready: bool,
    /// The running processes' ids, the serving container's first.
    pub pids: Vec<u32>,
    /// Restarts of all its containers.
    pub restarts: u32,
    /// Why it is not ready, when it is not (a sidecar's reason names the sidecar).
    pub reason: Option<String>,
    /// Why a container last failed, until it is ready again (a sidecar's names the sidecar).
    pub failure: Option<String>,
}

impl ReplicaState {
    /// A replica's state from its containers' states, the serving container first: ready when
    /// all are, and the first container's reason or failure that there is.
    pub fn of(url: &str, containers: &[(String, ProcessState)]) -> ReplicaState {
        let named = |i: usize, name: &str, why: &Option<String>| {
            why.as_ref().map(|why| match i {
                0 => why.clone(),
                _ => format!("sidecar {name}: {why}"),
            })
        };
        let first = |field: fn(&ProcessState) -> &Option<String>| {
            containers
                .iter()
                .enumerate()
                .find_map(|(i, (name, s))| named(i, name, field(s)))
        };
        ReplicaState {
            url: url.to_owned(),
            ready: !containers.is_empty() && containers.iter().all(|(_, s)| s.ready),
            pids: containers.iter().filter_map(|(_, s)| s.pid).collect(),
            restarts: containers.iter().map(|(_, s)| s.restarts).sum(),
            reason: first(|s| &s.reason),
            failure: first(|s| &s.failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn running(pid: u32) -> ProcessState {
        ProcessState {
            ready: true,
            pid: Some(pid),
            restarts: 0,
            reason: None,
            failure: None,
        }
    }

    #[test]
    fn a_replica_is_ready_when_every_container_is_and_says_which_sidecar_is_not() {
        let url = "http://127.0.0.1:1";
        let both = [
            ("app".to_owned(), running(10)),
            ("log".to_owned(), running(11)),
        ];
        let state = ReplicaState::of(url, &both);
        assert!(state.ready);
        assert_eq!(state.pids, [10, 11]);
        assert_eq!((state.reason, state.failure), (None, None));

        let mut crashed = both.clone();
        crashed[1].1 = ProcessState {
            ready: false,
            pid: None,
            restarts: 2,
            reason: Some("exited (exit status: 3)".into()),
            failure: Some("exited (exit status: 3)".into()),
        };
        let state = ReplicaState::of(url, &crashed);
        assert!(!state.ready);
        assert_eq!(state.pids, [10]);
        assert_eq!(state.restarts, 2);
        let want = "sidecar log: exited (exit status: 3)";
        assert_eq!(state.reason.as_deref(), Some(want));
        assert_eq!(state.failure.as_deref(), Some(want));

        // The serving container's own reason is shown as it is, and first.
        let mut starting = crashed.clone();
        starting[0].1.ready = false;
        starting[0].1.reason = Some("not answering on its port yet".into());
        let state = ReplicaState::of(url, &starting);
        assert_eq!(
            state.reason.as_deref(),
            Some("not answering on its port yet")
        );
        assert!(!ReplicaState::of(url, &[]).ready);
    }

    fn shell(script: &str) -> ContainerSpec {
        ContainerSpec {
            name: String::new(),
            process: ProcessSpec {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: BTreeMap::from([("SEEN".to_owned(), "yes".to_owned())]),
                working_dir: None,
            },
        }
    }

    async fn until(what: &str, replica: &Replica, ok: impl Fn(&ReplicaState) -> bool) {
        for _ in 0..100 {
            if ok(&replica.state()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: {:?}", replica.state());
    }

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Two real processes: the serving one listens on its `PORT` (python's http.server), the
    /// sidecar writes what it sees of `PORT` and its own env, then sleeps. A sidecar that
    /// exits is restarted; stopping the replica ends both.
    #[tokio::test]
    async fn every_container_runs_as_its_own_process_and_stops_with_the_replica() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("sidecar-env");
        let mut serving = shell("exec python3 -m http.server --bind 127.0.0.1 \"$PORT\"");
        serving.name = "app".into();
        let mut sidecar = shell(&format!(
            "echo \"PORT=${{PORT-unset}} SEEN=$SEEN\" >> {}; exec sleep 30",
            seen.display()
        ));
        sidecar.name = "log".into();
        let spec = ReplicaSpec {
            serving,
            sidecars: vec![sidecar],
        };
        let replica = Replica::start("test#1", &spec).unwrap();
        until("both containers ready", &replica, |s| {
            s.ready && s.pids.len() == 2
        })
        .await;
        let env = std::fs::read_to_string(&seen).unwrap();
        assert_eq!(env.trim(), "PORT=unset SEEN=yes");
        let addr: SocketAddr = replica.url.trim_start_matches("http://").parse().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());

        // The sidecar exits: it is restarted with backoff, like the serving container.
        let sidecar_pid = replica.state().pids[1];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(sidecar_pid).unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        until("the sidecar restarted", &replica, |s| {
            s.restarts == 1 && s.ready && s.pids.len() == 2 && s.pids[1] != sidecar_pid
        })
        .await;

        let pids = replica.state().pids;
        for task in replica.stop() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("stops within the grace period")
                .unwrap();
        }
        for pid in pids {
            assert!(!alive(pid), "process {pid} still runs");
        }
    }
}
