//! Process logging: logfmt (promslog-style keys: `time`, `level`, `msg`)
//! or JSON, filtered by `--log.level`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::prober::log::{LogFormat, logfmt_line, rfc3339};

/// Collects an event's fields as strings.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut pairs: Vec<(&str, String)> = vec![
            ("time", rfc3339(std::time::SystemTime::now())),
            ("level", meta.level().as_str().to_ascii_lowercase()),
            (
                "source",
                format!(
                    "{}:{}",
                    meta.file().unwrap_or("?"),
                    meta.line().unwrap_or(0)
                ),
            ),
            ("msg", fields.message),
        ];
        for (k, v) in &fields.pairs {
            pairs.push((k.as_str(), v.clone()));
        }
        writeln!(writer, "{}", logfmt_line(&pairs))
    }
}

/// Writes the lines of a probe's log (target `probe`) as they are — already
/// formatted in the log format, with `module` and `target` — and every other
/// event with `F`.
struct ProbeLinesAsIs<F>(F);

impl<S, N, F> FormatEvent<S, N> for ProbeLinesAsIs<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() == PROBE_TARGET {
            let mut fields = Fields::default();
            event.record(&mut fields);
            return writeln!(writer, "{}", fields.message);
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// The tracing target of probe log lines (`prober::log`).
const PROBE_TARGET: &str = "probe";

/// Install the global subscriber. `level` (`--log.level`) filters the
/// exporter's own messages, `prober_level` (`--log.prober`) the probe log
/// lines, independently as in blackbox: each is debug|info|warn|error.
pub fn init(level: &str, prober_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "handshake_exporter={level},{PROBE_TARGET}={prober_level},warn"
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = match format {
        LogFormat::Logfmt => builder.event_format(ProbeLinesAsIs(Logfmt)).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .map_event_format(ProbeLinesAsIs)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
