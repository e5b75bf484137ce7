//! The container images `scripts/image` builds without a registry: what they hold matches the
//! Dockerfile's image, each archive is a valid OCI layout whose binaries find all their
//! libraries in the image and run as its user, and containerd imports it and runs it
//! (read-only root filesystem, as the chart runs it).
//!
//! Packs the debug binaries the test build already made (`--no-build --profile debug`), with
//! fast compression. Needs root (chroot, containerd) and Debian's `containerd`, `runc` and
//! `ca-certificates`, which `scripts/test` installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn script() -> Command {
    let mut c = Command::new("python3");
    c.arg(repo().join("scripts/image"));
    c
}

/// The Dockerfile's runtime image: the binaries it copies, its entrypoint and its user.
fn dockerfile() -> (Vec<String>, String, String) {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let mut binaries: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("target/release/"))
        .map(str::to_owned)
        .collect();
    binaries.sort();
    binaries.dedup();
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("the Dockerfile has no {prefix:?} line"))
            .trim()
            .to_owned()
    };
    let entrypoint: Vec<String> =
        serde_json::from_str(&line("ENTRYPOINT ")).expect("ENTRYPOINT is a JSON array");
    (binaries, entrypoint.join(" "), line("USER "))
}

#[test]
fn the_image_holds_what_the_dockerfile_image_holds() {
    let out = run(script().arg("--describe"));
    let described: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ferry = &described["ferry"];
    let mut binaries: Vec<String> = ferry["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .map(|b| b.as_str().expect("a name").to_owned())
        .collect();
    binaries.sort();
    let (docker_binaries, docker_entrypoint, docker_user) = dockerfile();
    assert_eq!(binaries, docker_binaries, "same binaries");
    assert_eq!(ferry["entrypoint"], docker_entrypoint, "same entrypoint");
    assert_eq!(ferry["user"], docker_user, "same user");
    assert_eq!(docker_user, "65532:65532", "non-root, as the chart runs it");
}

/// containerd on a private socket and state, stopped when dropped.
struct Containerd {
    process: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\n[grpc]\n  address = {:?}\n",
                dir.path().join("root"),
                dir.path().join("state"),
                socket
            ),
        )
        .expect("config");
        let process = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("containerd starts (scripts/test installs Debian's containerd)");
        let c = Containerd {
            process,
            socket,
            _dir: dir,
        };
        let started = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "containerd did not answer on {:?}",
                c.socket
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .expect("ctr runs")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn archives_are_valid_run_in_their_root_filesystem_and_load_into_containerd() {
    assert_eq!(
        nix_uid(),
        0,
        "this test needs root (chroot and containerd); CI runs as root"
    );
    let out_dir = tempfile::tempdir().expect("tempdir");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let built = run(script()
        .args(["--no-build", "--profile", "debug", "--gzip-level", "1"])
        .arg("--target-dir")
        .arg(&target)
        .arg("--out")
        .arg(out_dir.path()));
    let listed = String::from_utf8_lossy(&built.stdout).into_owned();
    let archives: Vec<(&str, &str)> = listed.lines().filter_map(|l| l.split_once('\t')).collect();
    assert_eq!(archives.len(), 2, "{listed}");

    for (archive, _) in &archives {
        let checked = run(script().arg("--check").arg(archive));
        let report: Value = serde_json::from_slice(&checked.stdout).expect("JSON");
        assert_eq!(report["user"], "65532:65532");
    }

    let containerd = Containerd::start();
    for (archive, reference) in &archives {
        let imported = containerd.ctr(&["images", "import", archive]);
        assert!(
            imported.status.success(),
            "import {archive}: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
        let images =
            String::from_utf8_lossy(&containerd.ctr(&["images", "ls", "-q"]).stdout).into_owned();
        assert!(
            images.lines().any(|l| l == *reference),
            "{reference} in {images}"
        );
    }
    // The Ferry image runs from containerd as the chart runs it: read-only root, its user.
    let (_, ferry) = archives[0];
    let ran = containerd.ctr(&[
        "run",
        "--rm",
        "--read-only",
        ferry,
        "ferry-image-test",
        "/usr/local/bin/ferry-broker",
        "--version",
    ]);
    assert!(
        ran.status.success() && String::from_utf8_lossy(&ran.stdout).starts_with("ferry-broker "),
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
}

fn nix_uid() -> u32 {
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a uid")
}
