//! What every example revision process does around its own handlers, the way Knative runs a
//! container: listen on `LISTEN_HOST`:`PORT` ([`Listen`]), know its revision (`K_REVISION`),
//! stop on SIGTERM or Ctrl-C ([`shutdown_signal`], for axum's graceful shutdown, which drains
//! in-flight requests), and exit non-zero with a one-line message on failure ([`exit`]).
//!
//! Environment: `PORT` (default 8080), `LISTEN_HOST` (default `0.0.0.0`, every interface, as
//! Knative's runtime contract asks; `ferry dev` sets `127.0.0.1`), `K_REVISION` (optional). An
//! empty variable counts as unset.

use std::io;
use std::process::ExitCode;

use tokio::net::TcpListener;

/// The environment variable `name`, if set and not empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the process listens, and the revision it runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `LISTEN_HOST`.
    pub host: String,
    /// `PORT`.
    pub port: u16,
    /// `K_REVISION`, which Knative sets to the revision's name.
    pub revision: Option<String>,
}

impl Listen {
    /// Reads `LISTEN_HOST`, `PORT` and `K_REVISION` from the process environment.
    ///
    /// # Errors
    /// `PORT` is not a port number.
    pub fn from_env() -> io::Result<Listen> {
        Listen::from_lookup(env)
    }

    /// Reads the settings through `lookup` (a variable's value; `None` when unset or empty).
    ///
    /// # Errors
    /// `PORT` is not a port number.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> io::Result<Listen> {
        let port = lookup("PORT")
            .unwrap_or_else(|| "8080".into())
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("PORT: {e}")))?;
        Ok(Listen {
            // Knative's runtime contract: every interface, so the pod's IP answers.
            host: lookup("LISTEN_HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port,
            revision: lookup("K_REVISION"),
        })
    }

    /// Binds the listener and says on stderr where `process` listens and as which revision.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(&self, process: &str) -> io::Result<TcpListener> {
        let listener = TcpListener::bind((self.host.as_str(), self.port)).await?;
        eprintln!(
            "{process} listening on {} revision={}",
            listener.local_addr()?,
            self.revision.as_deref().unwrap_or("-")
        );
        Ok(listener)
    }
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends before it stops a pod).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The exit code of `process` after `result`; a failure is said on stderr first.
pub fn exit(process: &str, result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{process}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_serve_every_interface_on_8080() {
        let listen = Listen::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            listen,
            Listen {
                host: "0.0.0.0".into(),
                port: 8080,
                revision: None
            }
        );
    }

    #[test]
    fn knative_settings_are_read_and_a_bad_port_is_named() {
        let vars = [
            ("PORT", "9090"),
            ("LISTEN_HOST", "0.0.0.0"),
            ("K_REVISION", "cart-projection-00001"),
        ];
        let listen = Listen::from_lookup(lookup(&vars)).unwrap();
        assert_eq!((listen.host.as_str(), listen.port), ("0.0.0.0", 9090));
        assert_eq!(listen.revision.as_deref(), Some("cart-projection-00001"));
        let err = Listen::from_lookup(lookup(&[("PORT", "http")])).unwrap_err();
        assert!(err.to_string().starts_with("PORT: "), "{err}");
    }

    #[tokio::test]
    async fn bind_takes_a_free_port_when_asked_for_port_0() {
        let listen = Listen::from_lookup(lookup(&[("PORT", "0")])).unwrap();
        let listener = listen.bind("test").await.unwrap();
        assert_ne!(listener.local_addr().unwrap().port(), 0);
    }
}
