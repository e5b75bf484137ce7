//! OpenTelemetry spans exported over OTLP, configured as Knative configures tracing.
//!
//! A process holds one [`Telemetry`]. It starts from the `OTEL_*` environment
//! ([`Tracing::from_env`]) and follows the cluster's `config-observability` when one is
//! applied ([`Telemetry::apply`]), rebuilding its exporter when the settings change. While
//! tracing is off, [`Telemetry::tracer`] is one atomic load and every [`Span`] is empty: no
//! span is built, no context parsed, nothing allocated.
//!
//! Spans are batched by the SDK's batch processor on its own thread and sent with OTLP over
//! gRPC (tonic) or HTTP with protobuf bodies (the workspace's reqwest, driven on the Tokio
//! runtime the telemetry was made on). Sampling is parent-based, as in Knative: a caller's
//! `traceparent` decides for its trace, `sampling_rate` decides for new traces.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ferry_api::observability::{Tracing, TracingProtocol};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use opentelemetry::trace::SpanKind;

/// How long an export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A process's tracing: off, or a tracer whose spans go to the configured collector.
pub struct Telemetry {
    service: String,
    /// From `OTEL_*` at start: what applies while no ConfigMap says otherwise.
    from_env: Tracing,
    on: AtomicBool,
    active: RwLock<Active>,
}

#[derive(Default)]
struct Active {
    settings: Tracing,
    exporting: Option<(SdkTracerProvider, SdkTracer)>,
}

impl Telemetry {
    /// Tracing for `service` (the `service.name` of its spans) from the `OTEL_*` variables.
    ///
    /// # Errors
    /// A bad variable, naming it (the binaries refuse to start, as with a bad flag).
    pub fn from_env(service: &str) -> Result<Arc<Telemetry>, String> {
        let from_env = Tracing::from_env(|k| std::env::var(k).ok())?;
        let telemetry = Arc::new(Telemetry {
            service: std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| service.to_owned()),
            from_env,
            on: AtomicBool::new(false),
            active: RwLock::default(),
        });
        telemetry.apply(None);
        Ok(telemetry)
    }

    /// Tracing that stays off (tests, tools).
    pub fn off() -> Arc<Telemetry> {
        Arc::new(Telemetry {
            service: String::new(),
            from_env: Tracing::default(),
            on: AtomicBool::new(false),
            active: RwLock::default(),
        })
    }

    /// Follows the cluster's settings: `Some` from `config-observability`, `None` when it sets
    /// nothing (the `OTEL_*` settings apply). Unchanged settings change nothing; otherwise the
    /// old exporter is flushed and shut down on a background thread. An exporter that cannot
    /// be built leaves tracing off and says why.
    pub fn apply(&self, settings: Option<&Tracing>) {
        let settings = settings.unwrap_or(&self.from_env);
        let mut active = self.active.write().unwrap_or_else(|p| p.into_inner());
        if active.settings == *settings && (active.exporting.is_some() == settings.enabled()) {
            return;
        }
        let old = active.exporting.take();
        active.settings = settings.clone();
        if settings.enabled() {
            match provider(&self.service, settings) {
                Ok(provider) => {
                    let tracer = provider.tracer("ferry");
                    active.exporting = Some((provider, tracer));
                    tracing::info!(
                        protocol = settings.protocol.as_str(),
                        endpoint = %settings.endpoint,
                        sampling_rate = settings.sampling_rate,
                        "exporting traces"
                    );
                }
                Err(e) => tracing::warn!(
                    endpoint = %settings.endpoint,
                    error = %e,
                    "tracing stays off: the exporter cannot be built"
                ),
            }
        } else if old.is_some() {
            tracing::info!("tracing turned off");
        }
        self.on.store(active.exporting.is_some(), Ordering::Release);
        drop(active);
        if let Some((provider, _)) = old {
            // Shutting down flushes the batch, which may wait on the collector.
            std::thread::spawn(move || drop(provider.shutdown()));
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> Tracing {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .settings
            .clone()
    }

    /// Whether spans are being exported.
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Starts a span: a child of `parent` (a span of this process, or a caller's context from
    /// [`remote_parent`]), or the root of a new trace. Empty while tracing is off.
    pub fn start(&self, name: &'static str, kind: SpanKind, parent: &Parent) -> Span {
        if !self.enabled() {
            return Span(None);
        }
        let tracer = {
            let active = self.active.read().unwrap_or_else(|p| p.into_inner());
            match &active.exporting {
                Some((_, tracer)) => tracer.clone(),
                None => return Span(None),
            }
        };
        let cx = match parent {
            Parent::None => Context::new(),
            Parent::Context(sc) => Context::new().with_remote_span_context(sc.clone()),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&tracer, &cx);
        Span(Some(span))
    }

    /// Exports what is buffered and stops (at exit).
    pub fn shutdown(&self) {
        let mut active = self.active.write().unwrap_or_else(|p| p.into_inner());
        self.on.store(false, Ordering::Release);
        if let Some((provider, _)) = active.exporting.take() {
            drop(provider.shutdown_with_timeout(Duration::from_secs(5)));
        }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.service)
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

/// What a new span continues.
#[derive(Clone, Debug, Default)]
pub enum Parent {
    /// Nothing: the span starts a trace.
    #[default]
    None,
    /// A span context: a caller's `traceparent`, or a span of this process.
    Context(SpanContext),
}

impl Parent {
    /// The caller's context from a W3C `traceparent` value; [`Parent::None`] when it is absent
    /// or does not parse (a bad header starts a new trace, as the W3C spec says).
    pub fn remote(traceparent: Option<&str>) -> Parent {
        let Some(value) = traceparent else {
            return Parent::None;
        };
        let cx = TraceContextPropagator::new().extract(&OneHeader(value));
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            Parent::Context(sc)
        } else {
            Parent::None
        }
    }
}

struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// A span while tracing is on; nothing while it is off. Ends when dropped.
#[derive(Debug)]
pub struct Span(Option<opentelemetry_sdk::trace::Span>);

impl Span {
    /// A span that records nothing.
    pub fn none() -> Span {
        Span(None)
    }

    /// Whether the span exists (tracing is on), sampled or not.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the span records what is set on it: tracing is on and its trace is sampled.
    /// Attributes that cost work to compute are built only behind this.
    pub fn is_recording(&self) -> bool {
        use opentelemetry::trace::Span as _;
        self.0.as_ref().is_some_and(|s| s.is_recording())
    }

    /// This span as the parent of the next.
    pub fn parent(&self) -> Parent {
        use opentelemetry::trace::Span as _;
        match &self.0 {
            Some(s) => Parent::Context(s.span_context().clone()),
            None => Parent::None,
        }
    }

    /// The W3C `traceparent` that makes a receiver's spans children of this one; `None` while
    /// tracing is off.
    pub fn traceparent(&self) -> Option<String> {
        use opentelemetry::trace::Span as _;
        let sc = self.0.as_ref()?.span_context();
        sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        })
    }

    /// Sets an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&mut self, why: impl Into<String>) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = &mut self.0 {
            s.set_status(Status::error(why.into()));
        }
    }
}

fn provider(service: &str, settings: &Tracing) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::SpanExporter;
    // tonic's channel and the HTTP client's tasks belong to the runtime this is called on.
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "no Tokio runtime to send traces from".to_owned())?;
    let _entered = runtime.enter();
    let exporter = match settings.protocol {
        TracingProtocol::Grpc => {
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT);
            if settings.endpoint.starts_with("https://") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_webpki_roots(),
                );
            }
            builder.build()
        }
        TracingProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(OnRuntime {
                client: reqwest::Client::builder()
                    .timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())?,
                runtime: runtime.clone(),
            })
            .build(),
        TracingProtocol::None => return Err("tracing is off".into()),
    }
    .map_err(|e| e.to_string())?;
    let sampler =
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sampling_rate)));
    Ok(SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

/// The OTLP HTTP client: the SDK's batch processor calls it from its own thread, so each
/// request runs as a task on the process's Tokio runtime and the processor waits for it.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut out = http::Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(out.body(body))
        });
        match task.await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(e))) => Err(Box::new(e)),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(e) => Err(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_costs_no_span_and_a_traceparent_parses_or_starts_anew() {
        let t = Telemetry::off();
        let span = t.start("x", SpanKind::Server, &Parent::None);
        assert!(!span.is_some() && !span.is_recording());
        assert_eq!(span.traceparent(), None);
        let p = Parent::remote(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        match p {
            Parent::Context(sc) => {
                assert_eq!(
                    sc.trace_id().to_string(),
                    "4bf92f3577b34da6a3ce929d0e0e4736"
                );
                assert!(sc.is_sampled() && sc.is_remote());
            }
            Parent::None => panic!("a valid traceparent is a parent"),
        }
        assert!(matches!(Parent::remote(Some("00-zz-01")), Parent::None));
        assert!(matches!(Parent::remote(None), Parent::None));
    }

    #[tokio::test]
    async fn spans_continue_the_callers_trace_and_settings_switch_at_run_time() {
        let t = Telemetry::off();
        // No collector listens on this port: export fails later, in the background; spans
        // are made all the same.
        let on = Tracing {
            protocol: TracingProtocol::HttpProtobuf,
            endpoint: "http://127.0.0.1:9/v1/traces".into(),
            sampling_rate: 1.0,
        };
        t.apply(Some(&on));
        assert!(t.enabled());
        let caller = Parent::remote(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let span = t.start("ingress", SpanKind::Server, &caller);
        let tp = span.traceparent().unwrap();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(!tp.contains("00f067aa0ba902b7"), "a new span id: {tp}");
        assert!(tp.ends_with("-01"), "sampled: {tp}");
        let child = t.start("append", SpanKind::Producer, &span.parent());
        assert_eq!(&child.traceparent().unwrap()[..35], &tp[..35]);
        // A caller that did not sample: neither do we, and say so downstream.
        let unsampled = Parent::remote(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ));
        let not_sampled = t.start("x", SpanKind::Server, &unsampled);
        assert!(not_sampled.traceparent().unwrap().ends_with("-00"));
        assert!(
            !not_sampled.is_recording(),
            "nothing to build attributes for"
        );
        assert!(span.is_recording() && child.is_recording());
        t.apply(None);
        assert!(!t.enabled(), "back to what `off` started from");
        assert!(!t.start("x", SpanKind::Server, &caller).is_some());
    }
}
