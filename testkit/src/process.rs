//! Runs a Ferry binary for cross-process tests: it prints one line naming its listeners
//! (`ferry-broker listening kafka=127.0.0.1:1234 admin=127.0.0.1:5678`) and is killed
//! when the test drops it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process and the addresses from its first stdout line; killed when dropped.
pub struct Process {
    child: Child,
    name: String,
    line: String,
    addrs: BTreeMap<String, SocketAddr>,
}

impl Process {
    /// Starts `program` with `args` and extra `env`, stderr inherited, and reads its first
    /// stdout line; the rest of stdout is drained by a thread so the child never blocks.
    ///
    /// # Panics
    /// When the program cannot start or exits before printing a line.
    pub fn start<A, K, V>(
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = A>,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Process
    where
        A: AsRef<OsStr>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let name = program.as_ref().to_string_lossy().into_owned();
        let mut child = Command::new(&program)
            .args(args)
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read the first line of {name}: {e}"));
        if line.is_empty() {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            panic!("{name} exited ({status}) before printing its listening line");
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addrs = line
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .filter_map(|(key, value)| Some((key.to_owned(), value.parse().ok()?)))
            .collect();
        Process {
            child,
            name,
            line,
            addrs,
        }
    }

    /// The address printed as `key=ADDR`.
    ///
    /// # Panics
    /// When the first line has no such field.
    pub fn addr(&self, key: &str) -> SocketAddr {
        *self
            .addrs
            .get(key)
            .unwrap_or_else(|| panic!("no {key}=ADDR in {:?} from {}", self.line, self.name))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    ///
    /// # Panics
    /// When the process is still running after 20 s or exits non-zero.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self
            .wait(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{} still running 20 s after SIGTERM", self.name));
        assert!(
            status.success(),
            "{} exits 0 on SIGTERM, got {status}",
            self.name
        );
    }

    /// Sends SIGKILL (no chance to flush) and waits up to 10 s for it to die.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.wait(Duration::from_secs(10));
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` from `addr` over plain HTTP/1.1 and returns the whole response (status line,
/// headers and body).
///
/// # Panics
/// When the connection fails or the response takes more than 5 s.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_host(addr, &addr.to_string(), path)
}

/// [`http_get`] with `host` as the `Host` header (a Knative Service's name, say).
///
/// # Panics
/// When the connection fails or the response takes more than 5 s.
pub fn http_get_host(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("read GET {path} from {addr}: {e}"));
    response
}

/// Polls `f` every 20 ms until it returns `Some`.
///
/// # Panics
/// After `timeout`, naming `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_from_the_first_line_and_stops_cleanly() {
        // The trap is set before the line, so SIGTERM always finds it.
        let script = "trap 'exit 0' TERM; echo 'x listening kafka=127.0.0.1:9092 admin=[::1]:80'; \
                      seq 100000; while :; do sleep 0.05; done";
        let process = Process::start("sh", ["-c", script], [("LC_ALL", "C")]);
        assert_eq!(process.addr("kafka"), "127.0.0.1:9092".parse().unwrap());
        assert_eq!(process.addr("admin").port(), 80);
        assert_eq!(process.addrs.len(), 2);
        process.stop();
    }
}
