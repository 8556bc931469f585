//! Logging in the format go-plugin understands.
//!
//! go-plugin reads the plugin's stderr line by line. A line that is a JSON
//! object with `@level` and `@message` (and optionally `@timestamp` in the
//! exact layout `2006-01-02T15:04:05.000000Z07:00`) is re-logged by Terraform
//! at that level with all other keys as key/value pairs; anything else is
//! logged as raw DEBUG text. So every event becomes exactly one JSON line.
//!
//! Terraform also watches ERROR messages starting with `panic: ` to print a
//! "plugin crashed" report; the panic hook uses that.

use std::fmt;
use std::io::Write as _;
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Value of `@module` on every line. Terraform prefixes it with the plugin
/// name, so lines show up as `provider.terraform-provider-kvm: ...`.
const MODULE: &str = "provider";

/// Installs the JSON-lines `tracing` subscriber on stderr and the panic hook.
///
/// The level comes from `TF_LOG_PROVIDER`, else `TF_LOG` (`trace`, `debug`,
/// `info`, `warn`, `error`, `off`; `json` means trace; anything else also
/// means trace, like Terraform), defaulting to INFO. Terraform filters again
/// on its side, so this only avoids producing lines nobody will read. The
/// gRPC/HTTP2/TLS crates are capped at WARN (see `TRANSPORT_CRATES`).
/// Calling it twice, or after another subscriber was installed, is harmless.
pub fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let level =
            level_from_env(std::env::var("TF_LOG_PROVIDER").ok().as_deref(), std::env::var("TF_LOG").ok().as_deref());
        let subscriber = tracing_subscriber::registry().with(level).with(JsonLayer::stderr());
        // Err means someone else installed a subscriber first: keep theirs.
        let _ = tracing::subscriber::set_global_default(subscriber);
        install_panic_hook();
    });
}

/// Maps Terraform's log-level variables to a filter; the provider-specific
/// one wins when set.
pub(crate) fn level_from_env(tf_log_provider: Option<&str>, tf_log: Option<&str>) -> LevelFilter {
    let chosen = [tf_log_provider, tf_log].into_iter().flatten().map(str::trim).find(|v| !v.is_empty());
    match chosen.map(str::to_ascii_lowercase).as_deref() {
        None => LevelFilter::INFO,
        Some("off") => LevelFilter::OFF,
        Some("error") => LevelFilter::ERROR,
        Some("warn") => LevelFilter::WARN,
        Some("info") => LevelFilter::INFO,
        Some("debug") => LevelFilter::DEBUG,
        // "trace", "json" and unknown values: Terraform treats them as TRACE.
        Some(_) => LevelFilter::TRACE,
    }
}

/// hclog's level names, which go-plugin parses back.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Formats a UTC time as go-plugin's `2006-01-02T15:04:05.000000Z07:00`
/// (always 6 fractional digits and `Z`; another shape would make go-plugin
/// drop the timestamp and treat the whole line as raw text).
pub(crate) fn format_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() as i64;
    let micros = since_epoch.subsec_micros();
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); the
/// classic era-based algorithm (400-year cycles of 146 097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Builds one log line (with trailing newline). Reserved `@` keys cannot be
/// overridden by fields.
pub(crate) fn format_line(level: &str, message: &str, time: SystemTime, fields: Map<String, Value>) -> String {
    let mut obj = Map::new();
    obj.insert("@level".into(), Value::from(level));
    obj.insert("@message".into(), Value::from(message));
    obj.insert("@module".into(), Value::from(MODULE));
    obj.insert("@timestamp".into(), Value::from(format_timestamp(time)));
    for (key, value) in fields {
        obj.entry(key).or_insert(value);
    }
    let mut line = Value::Object(obj).to_string();
    line.push('\n');
    line
}

/// Writes a whole line with one call under the stderr lock, so lines from
/// different threads never interleave. Errors are ignored: there is nowhere
/// left to report them.
fn write_stderr(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.flush();
}

/// Crates of the gRPC/HTTP2/TLS stack. Their DEBUG/TRACE output is one line
/// per HTTP/2 frame — thousands of lines per Terraform run that drown the
/// provider's own messages — so only their warnings and errors are kept.
const TRANSPORT_CRATES: &[&str] =
    &["h2", "hyper", "hyper_util", "tonic", "tonic_health", "tower", "axum", "rustls", "tokio_rustls", "mio"];

/// Whether an event or span from `target` at `level` is worth a line.
pub(crate) fn target_enabled(target: &str, level: &Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    !TRANSPORT_CRATES.contains(&crate_name) || *level <= Level::WARN
}

/// Where finished lines go: stderr in production, a buffer in tests.
type LineSink = Box<dyn Fn(&str) + Send + Sync>;

/// The `tracing` layer that prints events as go-plugin JSON lines. Fields of
/// the enclosing spans are included (outermost first, inner ones win), so
/// e.g. a span per RPC can tag every line with the resource type.
struct JsonLayer {
    sink: LineSink,
}

impl JsonLayer {
    fn stderr() -> Self {
        JsonLayer { sink: Box::new(write_stderr) }
    }
}

/// Span fields stored in the registry's span extensions.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if target_enabled(meta.target(), meta.level()) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        target_enabled(meta.target(), meta.level())
    }

    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = FieldCollector::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.into_map()));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(SpanFields(map)) = extensions.get_mut::<SpanFields>() {
                let mut fields = FieldCollector::default();
                values.record(&mut fields);
                map.extend(fields.into_map());
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A panicking Debug impl of some logged value must not take the
        // provider down through its logger.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut fields = Map::new();
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(SpanFields(map)) = span.extensions().get::<SpanFields>() {
                        fields.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
            let mut collector = FieldCollector::default();
            event.record(&mut collector);
            let message = collector.message.take().unwrap_or_default();
            fields.extend(collector.into_map());
            let meta = event.metadata();
            if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
                fields.insert("@caller".into(), Value::from(format!("{file}:{line}")));
            }
            let line = format_line(level_name(meta.level()), &message, SystemTime::now(), fields);
            (self.sink)(&line);
        }));
    }
}

/// Collects `tracing` fields as JSON values; the `message` field is kept
/// apart because it becomes `@message`.
#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldCollector {
    fn into_map(self) -> Map<String, Value> {
        self.fields
    }

    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldCollector {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // Include the cause chain: the top-level message alone is often too
        // vague ("connection failed") to act on.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.put(field, Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// The text of a panic payload (`panic!` produces `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}

/// Replaces the default panic output (plain text, which Terraform would only
/// show at DEBUG) with ERROR JSON lines: first `panic: <message>`, which
/// Terraform's crash detector recognises, then the backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let mut fields = Map::new();
        if let Some(location) = info.location() {
            fields.insert("@caller".into(), Value::from(format!("{}:{}", location.file(), location.line())));
        }
        if let Some(name) = std::thread::current().name() {
            fields.insert("thread".into(), Value::from(name));
        }
        let now = SystemTime::now();
        write_stderr(&format_line("error", &format!("panic: {message}"), now, fields));
        let backtrace = std::backtrace::Backtrace::force_capture();
        write_stderr(&format_line("error", &format!("{backtrace}"), now, Map::new()));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The exact shape go-plugin's `time.Parse` layout accepts.
    fn is_go_plugin_timestamp(s: &str) -> bool {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b[i].is_ascii_digit());
        b.len() == 27
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && b[19] == b'.'
            && digits(20..26)
            && b[26] == b'Z'
    }

    #[test]
    fn timestamps_have_go_plugin_layout() {
        let t = UNIX_EPOCH + Duration::new(1_795_433_400, 123_456_789);
        assert_eq!(format_timestamp(t), "2026-11-23T11:30:00.123456Z");
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // Leap day and end of year.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_timestamp(t), "2000-02-29T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(1_735_689_599, 999_999_000);
        assert_eq!(format_timestamp(t), "2024-12-31T23:59:59.999999Z");
        assert!(is_go_plugin_timestamp(&format_timestamp(SystemTime::now())));
    }

    #[test]
    fn civil_dates_match_a_day_by_day_walk() {
        // Walk forward from 1970-01-01 for ~150 years and compare.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..55_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn log_line_shape() {
        let mut fields = Map::new();
        fields.insert("type_name".into(), Value::from("kvm_domain"));
        fields.insert("@level".into(), Value::from("sneaky"));
        let line = format_line("warn", "hello \"world\"\nnext", SystemTime::now(), fields);
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "one physical line: {line}");
        let v: Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "hello \"world\"\nnext");
        assert_eq!(v["@module"], "provider");
        assert_eq!(v["type_name"], "kvm_domain");
        assert!(is_go_plugin_timestamp(v["@timestamp"].as_str().unwrap()));
    }

    #[test]
    fn transport_crates_are_capped_at_warn() {
        assert!(!target_enabled("h2::codec::framed_write", &Level::TRACE));
        assert!(!target_enabled("tonic::transport::server", &Level::DEBUG));
        assert!(target_enabled("hyper::proto", &Level::WARN));
        assert!(target_enabled("terraform_provider_kvm::plugin", &Level::TRACE));
        assert!(target_enabled("h2o_lookalike", &Level::TRACE));
    }

    #[test]
    fn levels_from_environment() {
        assert_eq!(level_from_env(None, None), LevelFilter::INFO);
        assert_eq!(level_from_env(None, Some("")), LevelFilter::INFO);
        assert_eq!(level_from_env(None, Some("DEBUG")), LevelFilter::DEBUG);
        assert_eq!(level_from_env(Some("warn"), Some("trace")), LevelFilter::WARN);
        assert_eq!(level_from_env(Some(""), Some("error")), LevelFilter::ERROR);
        assert_eq!(level_from_env(None, Some("JSON")), LevelFilter::TRACE);
        assert_eq!(level_from_env(None, Some("bogus")), LevelFilter::TRACE);
        assert_eq!(level_from_env(Some("off"), None), LevelFilter::OFF);
    }

    #[test]
    fn events_become_json_lines_with_span_and_event_fields() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let layer = JsonLayer { sink: Box::new(move |l: &str| sink.lock().unwrap().push(l.to_owned())) };
        let subscriber = tracing_subscriber::registry().with(LevelFilter::DEBUG).with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc", rpc = "PlanResourceChange", type_name = "kvm_domain");
            let _entered = span.enter();
            let err = std::io::Error::other("disk full");
            tracing::warn!(
                type_name = "kvm_pool",
                count = 3u64,
                ok = true,
                error = &err as &dyn std::error::Error,
                "planned {}",
                "x"
            );
            tracing::trace!("filtered out by the level");
            tracing::debug!(target: "h2::codec", "filtered out as transport noise");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "planned x");
        assert_eq!(v["@module"], "provider");
        assert!(is_go_plugin_timestamp(v["@timestamp"].as_str().unwrap()));
        assert!(v["@caller"].as_str().unwrap().contains("logging.rs:"));
        assert_eq!(v["rpc"], "PlanResourceChange", "span field");
        assert_eq!(v["type_name"], "kvm_pool", "event field wins over span field");
        assert_eq!(v["count"], 3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["error"], "disk full");
    }
}
