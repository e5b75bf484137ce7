//! Where Ferry sends traces: Knative's tracing settings, read from its ConfigMap or from the
//! standard `OTEL_*` environment variables.
//!
//! Knative (1.18 and later) configures tracing in `config-observability`:
//! `tracing-protocol` (`grpc`, `http/protobuf` or `none`, the default), `tracing-endpoint`
//! (the collector's URL) and `tracing-sampling-rate` (0 to 1). Earlier releases used
//! `config-tracing`: `backend` (`zipkin` or `none`), `zipkin-endpoint`, `sample-rate`. Ferry
//! reads both key sets from the one ConfigMap it follows. It exports OTLP only: `backend:
//! zipkin` is refused with what to write instead (Jaeger and the OpenTelemetry Collector accept
//! OTLP).
//!
//! The operator reads the ConfigMap and puts the settings in the contract, so dispatchers
//! follow a change without a restart; `ferry dev` reads it from the manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Knative's current ConfigMap for tracing (and metrics and logging).
pub const CONFIG_OBSERVABILITY: &str = "config-observability";
/// Knative's ConfigMap for tracing before 1.18.
pub const CONFIG_TRACING: &str = "config-tracing";

/// How spans reach the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracingProtocol {
    /// No tracing.
    #[default]
    #[serde(rename = "none")]
    None,
    /// OTLP over gRPC (collector port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (collector port 4318, path `/v1/traces`).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl TracingProtocol {
    /// Reads Knative's `tracing-protocol` or OTel's `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    ///
    /// # Errors
    /// Anything else, naming the values that work.
    pub fn parse(raw: &str) -> Result<TracingProtocol, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(TracingProtocol::None),
            "grpc" => Ok(TracingProtocol::Grpc),
            "http/protobuf" => Ok(TracingProtocol::HttpProtobuf),
            "http/json" => {
                Err("OTLP over http/json is not exported; use http/protobuf or grpc".into())
            }
            other => Err(format!(
                "{other:?} is not a tracing protocol; use grpc, http/protobuf or none"
            )),
        }
    }

    /// The name Knative and OTel use.
    pub fn as_str(self) -> &'static str {
        match self {
            TracingProtocol::None => "none",
            TracingProtocol::Grpc => "grpc",
            TracingProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where traces go and how many are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// How spans are exported; [`TracingProtocol::None`] turns tracing off.
    pub protocol: TracingProtocol,
    /// The collector: for `grpc` its URL (`http://collector:4317`), for `http/protobuf` the full
    /// URL spans are posted to (`http://collector:4318/v1/traces`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// The share of new traces recorded, 0 to 1. A caller's `traceparent` decides for its own
    /// trace (sampled callers are recorded, others are not), as Knative's parent-based sampler.
    #[serde(default)]
    pub sampling_rate: f64,
}

// The rate is a checked number in 0..=1 (never NaN), so equality is total.
impl Eq for Tracing {}

impl Tracing {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.protocol != TracingProtocol::None
    }

    /// Reads the tracing keys of `config-observability` or `config-tracing`. `None` when the
    /// data has no tracing key at all (the ConfigMap leaves tracing to the environment);
    /// `_example` and keys of metrics and logging are ignored.
    ///
    /// # Errors
    /// Every bad value, each naming its key and what to write instead (a bad ConfigMap changes
    /// nothing: the caller keeps what it had).
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Option<Tracing>, String> {
        let get = |key: &str| data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let current = [
            "tracing-protocol",
            "tracing-endpoint",
            "tracing-sampling-rate",
        ];
        let legacy = ["backend", "zipkin-endpoint", "sample-rate"];
        let has = |keys: &[&str]| keys.iter().any(|k| get(k).is_some());
        if !has(&current) && !has(&legacy) {
            return Ok(None);
        }
        let mut problems = Vec::new();
        let mut tracing = Tracing::default();
        if has(&current) {
            match TracingProtocol::parse(get("tracing-protocol").unwrap_or("none")) {
                Ok(p) => tracing.protocol = p,
                Err(e) => problems.push(format!("tracing-protocol: {e}")),
            }
            tracing.endpoint = get("tracing-endpoint").unwrap_or_default().to_owned();
            if let Some(rate) = get("tracing-sampling-rate") {
                match parse_rate(rate) {
                    Ok(r) => tracing.sampling_rate = r,
                    Err(e) => problems.push(format!("tracing-sampling-rate: {e}")),
                }
            }
        } else {
            match get("backend").unwrap_or("none") {
                b if b.eq_ignore_ascii_case("none") => {}
                b if b.eq_ignore_ascii_case("zipkin") => problems.push(
                    "backend: zipkin is not exported; Ferry exports OTLP: set tracing-protocol \
                     (grpc or http/protobuf) and tracing-endpoint instead (Jaeger, Zipkin's \
                     successors and the OpenTelemetry Collector accept OTLP)"
                        .into(),
                ),
                b => problems.push(format!("backend: {b:?} is not a tracing backend; use none, or tracing-protocol for OTLP")),
            }
            if let Some(rate) = get("sample-rate") {
                match parse_rate(rate) {
                    Ok(r) => tracing.sampling_rate = r,
                    Err(e) => problems.push(format!("sample-rate: {e}")),
                }
            }
        }
        if let Err(e) = tracing.check() {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(Some(tracing))
        } else {
            Err(problems.join("; "))
        }
    }

    /// Reads the standard OpenTelemetry variables through `var` (`std::env::var` in the
    /// binaries): `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` (`otlp` or `none`),
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (`/v1/traces` appended for HTTP), `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` /
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`, as the OTel SDKs), and
    /// `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG`. Tracing is on only when an
    /// endpoint variable is set: nothing is sent to a default address nobody configured.
    ///
    /// # Errors
    /// A bad value, naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Tracing, String> {
        let get = |key: &str| {
            var(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let off = Ok(Tracing::default());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return off;
        }
        match get("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return off,
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER={other:?}: Ferry exports otlp (or none)"
                ));
            }
        }
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            None => TracingProtocol::HttpProtobuf,
            Some(p) => match TracingProtocol::parse(&p) {
                Ok(TracingProtocol::None) | Err(_) => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL={p:?} is not an OTLP protocol; use grpc or http/protobuf"
                    ));
                }
                Ok(p) => p,
            },
        };
        let endpoint = match get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e) => e,
            None => match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(e) if protocol == TracingProtocol::HttpProtobuf => {
                    format!("{}/v1/traces", e.trim_end_matches('/'))
                }
                Some(e) => e,
                None => return off,
            },
        };
        let arg = get("OTEL_TRACES_SAMPLER_ARG");
        let ratio = || match &arg {
            None => Ok(1.0),
            Some(a) => parse_rate(a).map_err(|e| format!("OTEL_TRACES_SAMPLER_ARG: {e}")),
        };
        let sampling_rate = match get("OTEL_TRACES_SAMPLER").as_deref() {
            None | Some("always_on" | "parentbased_always_on") => 1.0,
            Some("always_off" | "parentbased_always_off") => 0.0,
            Some("traceidratio" | "parentbased_traceidratio") => ratio()?,
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported; use always_on, always_off, \
                     traceidratio or their parentbased_ forms"
                ));
            }
        };
        let tracing = Tracing {
            protocol,
            endpoint,
            sampling_rate,
        };
        tracing.check()?;
        Ok(tracing)
    }

    /// Checks what both sources share: an exporting protocol needs an http(s) endpoint, and
    /// the rate is in 0..=1.
    ///
    /// # Errors
    /// The first problem, with the fix.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sampling_rate) {
            return Err(format!(
                "sampling rate {} is not between 0 and 1",
                self.sampling_rate
            ));
        }
        if self.enabled() {
            let e = &self.endpoint;
            if e.is_empty() {
                return Err(format!(
                    "tracing-protocol {} needs tracing-endpoint, the collector's URL",
                    self.protocol.as_str()
                ));
            }
            let http = e.starts_with("http://") || e.starts_with("https://");
            if !http || !crate::duck::is_absolute_url(e) || e.contains(char::is_whitespace) {
                return Err(format!(
                    "tracing endpoint {e:?} is not an http:// or https:// URL with a host"
                ));
            }
        }
        Ok(())
    }
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{raw:?} is not a number between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn knative_current_keys_read_and_a_map_without_them_leaves_tracing_alone() {
        let t = Tracing::from_data(&data(&[
            ("tracing-protocol", "grpc"),
            ("tracing-endpoint", "http://jaeger.observability:4317"),
            ("tracing-sampling-rate", "0.1"),
            ("metrics-protocol", "prometheus"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.protocol, TracingProtocol::Grpc);
        assert_eq!(t.endpoint, "http://jaeger.observability:4317");
        assert_eq!(t.sampling_rate, 0.1);
        assert!(t.enabled());
        assert_eq!(
            Tracing::from_data(&data(&[("_example", "tracing-protocol: grpc")])),
            Ok(None)
        );
        let none = Tracing::from_data(&data(&[("tracing-protocol", "none")]))
            .unwrap()
            .unwrap();
        assert!(!none.enabled());
    }

    #[test]
    fn bad_values_name_their_key_and_the_fix() {
        let e = Tracing::from_data(&data(&[
            ("tracing-protocol", "thrift"),
            ("tracing-sampling-rate", "2"),
        ]))
        .unwrap_err();
        assert!(
            e.contains("tracing-protocol") && e.contains("grpc, http/protobuf or none"),
            "{e}"
        );
        assert!(
            e.contains("tracing-sampling-rate") && e.contains("between 0 and 1"),
            "{e}"
        );
        let e = Tracing::from_data(&data(&[("tracing-protocol", "http/protobuf")])).unwrap_err();
        assert!(e.contains("needs tracing-endpoint"), "{e}");
        let e = Tracing::from_data(&data(&[
            ("tracing-protocol", "grpc"),
            ("tracing-endpoint", "collector:4317"),
        ]))
        .unwrap_err();
        assert!(e.contains("http:// or https://"), "{e}");
    }

    #[test]
    fn the_older_config_tracing_keys_are_read_and_zipkin_is_refused_with_the_way_out() {
        let t = Tracing::from_data(&data(&[("backend", "none"), ("sample-rate", "0.5")]))
            .unwrap()
            .unwrap();
        assert!(!t.enabled());
        assert_eq!(t.sampling_rate, 0.5);
        let e = Tracing::from_data(&data(&[
            ("backend", "zipkin"),
            ("zipkin-endpoint", "http://zipkin:9411/api/v2/spans"),
        ]))
        .unwrap_err();
        assert!(e.contains("set tracing-protocol"), "{e}");
    }

    #[test]
    fn otel_variables_turn_tracing_on_only_with_an_endpoint() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(Tracing::from_env(env(&[])), Ok(Tracing::default()));
        let t =
            Tracing::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])).unwrap();
        assert_eq!(t.protocol, TracingProtocol::HttpProtobuf);
        assert_eq!(t.endpoint, "http://c:4318/v1/traces");
        assert_eq!(t.sampling_rate, 1.0);
        let t = Tracing::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]))
        .unwrap();
        assert_eq!(
            (t.protocol, t.endpoint.as_str(), t.sampling_rate),
            (TracingProtocol::Grpc, "http://c:4317", 0.25)
        );
        let t = Tracing::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .unwrap();
        assert!(!t.enabled());
        let e = Tracing::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
        ]))
        .unwrap_err();
        assert!(e.contains("OTEL_TRACES_SAMPLER"), "{e}");
        let e = Tracing::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]))
        .unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{e}");
    }
}
