//! The log subscriber: text or JSON lines on stdout, filtered by `RUST_LOG`, each line carrying
//! its spans (`http{request_id=…}`, `ws`, `graphql{operation=…}`); with the `otlp` feature and
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, spans are exported over OTLP as well.
//!
//! Levels: ERROR is for what an operator must look at (internal errors, failing upstreams,
//! failed job passes); client mistakes (wrong password, validation, CONFLICT, NOT_FOUND,
//! FORBIDDEN, …) are one INFO line each; the per-request access line is DEBUG.
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt as _, registry::LookupSpan};

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// The formatting layer the binary uses, writing to `writer` (tests capture it).
pub fn fmt_layer<S, W>(json: bool, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    if json { layer.json().boxed() } else { layer.with_ansi(ansi).boxed() }
}

/// Keeps the exporter running; flushes pending spans when dropped.
#[must_use]
pub struct Guard {
    #[cfg(feature = "otlp")]
    otlp: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.otlp.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("minispod: flushing OTLP spans failed: {e}");
        }
    }
}

/// Installs the process's subscriber (once; later calls do nothing).
pub fn init(config: &crate::config::Config) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only for a terminal: logs collected from a pipe or a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter).with(fmt_layer(config.log_json, ansi, std::io::stdout));
    #[cfg(feature = "otlp")]
    {
        let (layer, otlp) = match otlp::layer(&config.otlp) {
            Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
            Ok(None) => (None, None),
            Err(e) => {
                eprintln!("minispod: OTLP export disabled: {e:#}");
                (None, None)
            }
        };
        let _ = tracing::subscriber::set_global_default(registry.with(layer));
        Guard { otlp }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = tracing::subscriber::set_global_default(registry);
        if config.otlp.endpoint.is_some() {
            tracing::warn!(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no `otlp` feature; spans are not exported"
            );
        }
        Guard {}
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use anyhow::Context as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
    use tracing::Subscriber;
    use tracing_subscriber::{Layer, registry::LookupSpan};

    use crate::config::OtlpSettings;

    /// The OpenTelemetry layer, or `None` when no endpoint is configured.
    pub fn layer<S>(settings: &OtlpSettings) -> anyhow::Result<Option<(impl Layer<S>, SdkTracerProvider)>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(endpoint) = settings.endpoint.as_deref() else {
            return Ok(None);
        };
        // The standard variable names the collector's base URL; the traces path is appended
        // as the OTLP/HTTP specification says.
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_headers(settings.headers.clone())
            .build()
            .context("cannot build the OTLP span exporter")?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(settings.service_name.clone()).build())
            .build();
        let tracer = provider.tracer("minispod-gateway");
        Ok(Some((tracing_opentelemetry::layer().with_tracer(tracer), provider)))
    }
}
