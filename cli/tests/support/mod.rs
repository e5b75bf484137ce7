//! `ferry dev` as a child process on copies of the examples, and a small HTTP client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ferry_testkit::process::{Process, eventually};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(90);

pub fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("ferry runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Builds the example services (debug) next to the `ferry` binary and returns that directory.
pub fn example_binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo())
        .args([
            "build",
            "--quiet",
            "-p",
            "cart-projection",
            "-p",
            "event-recorder",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example services build");
    Path::new(env!("CARGO_BIN_EXE_ferry"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `examples/<example>` copied to `dir`, running the prebuilt services instead of `cargo run`,
/// with `.ferry/` paths moved into `dir` and `replace` applied; otherwise unchanged.
pub fn example(example: &str, dir: &Path, bin: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let out = dir.join(example);
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(repo().join("examples").join(example)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        for service in ["cart-projection", "event-recorder"] {
            text = text.replace(
                &format!(r#"["cargo", "run", "--quiet", "--release", "-p", "{service}"]"#),
                &format!("[{:?}]", bin.join(service)),
            );
        }
        text = text.replace(".ferry/", &format!("{}/", dir.to_string_lossy()));
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    out
}

/// A running `ferry dev`; stopped with SIGTERM (so it stops its revisions) when dropped.
pub struct Dev {
    pub process: Option<Process>,
    data: PathBuf,
}

impl Dev {
    /// Starts `ferry dev` on free ports, with `extra` flags (e.g. `--kafka ADDR`, or
    /// `--broker-listen ADDR` to replace the free port of the embedded broker).
    pub fn start(manifests: &Path, data: &Path, extra: &[&str]) -> Dev {
        Dev::start_with_env(manifests, data, extra, &[])
    }

    /// As [`Dev::start`], with `env` set for the ferry dev process (e.g. `OTEL_*`).
    pub fn start_with_env(
        manifests: &Path,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Dev {
        let manifests = manifests.to_string_lossy();
        let data_dir = data.to_string_lossy();
        let mut args = vec![
            "dev",
            "-f",
            &manifests,
            "--data-dir",
            &data_dir,
            "--ingress",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ];
        if !extra.contains(&"--broker-listen") {
            args.extend(["--broker-listen", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let env = [("RUST_LOG", "warn")].iter().chain(env).copied();
        let process = Process::start(env!("CARGO_BIN_EXE_ferry"), args, env);
        Dev {
            process: Some(process),
            data: data.to_owned(),
        }
    }

    pub fn ingress(&self) -> String {
        format!("http://{}", self.process.as_ref().unwrap().addr("ingress"))
    }

    pub fn status(&self) -> Option<Value> {
        let text = std::fs::read(self.data.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn row(&self, kind: &str, name: &str) -> Option<Value> {
        self.status()?["resources"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .cloned()
    }

    /// Waits until every resource is ready, and returns the status.
    pub fn ready(&self) -> Value {
        eventually("every resource ready", WAIT, || {
            let status = self.status()?;
            let rows = status["resources"].as_array()?;
            (!rows.is_empty() && rows.iter().all(|r| r["ready"] == true)).then_some(status)
        })
    }

    pub fn url(&self, kind: &str, name: &str) -> String {
        let row = self.row(kind, name).expect("row");
        row["url"].as_str().expect("url").to_owned()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            if std::thread::panicking() {
                let _ = Command::new("kill").arg(p.pid().to_string()).status();
                std::thread::sleep(Duration::from_secs(3));
            } else {
                p.stop();
            }
        }
    }
}

pub mod http {
    //! A blocking GET/DELETE/POST over std, enough for these checks.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use serde_json::Value;

    fn request(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let mut stream = TcpStream::connect(host).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body.as_bytes()).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    pub fn get(url: &str) -> Option<(u16, Value)> {
        let (status, body) = request("GET", url, &[], "")?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    pub fn delete(url: &str) -> Option<u16> {
        request("DELETE", url, &[], "").map(|(s, _)| s)
    }

    pub fn post_event(url: &str, id: &str, ty: &str, key: &str, data: &str) -> Option<u16> {
        post_event_with(url, id, ty, key, data, &[])
    }

    /// As [`post_event`], with `extra` headers (e.g. `traceparent`).
    pub fn post_event_with(
        url: &str,
        id: &str,
        ty: &str,
        key: &str,
        data: &str,
        extra: &[(&str, &str)],
    ) -> Option<u16> {
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-type", ty),
            ("ce-source", "/test"),
            ("ce-partitionkey", key),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        request("POST", url, &headers, data).map(|(s, _)| s)
    }
}
