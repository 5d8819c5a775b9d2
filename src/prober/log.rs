//! The log of one probe: kept in memory for `debug=true` and `/logs`, and
//! mirrored to the process log from the `--log.prober` level up (at most
//! [`MAX_LOG_BYTES`] of it per probe).
//!
//! Every line carries `module=` and `target=` like blackbox's scrape logger,
//! and always includes debug-level detail (what users open the debug page
//! for). The format follows `--log.format`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// What one probe's log keeps at most: whatever a target makes the probe
/// log (a stream of lines that never match, say), the log — and the history
/// entry holding it — stays this size.
pub const MAX_LOG_BYTES: usize = 64 * 1024;
/// Of that, the newest lines kept once the log is full (the end of a probe
/// says how it ended).
const TAIL_BYTES: usize = 16 * 1024;
/// A field value longer than this is cut (with a note of how much).
const MAX_FIELD_BYTES: usize = 4 * 1024;

/// Collected log lines of one probe.
pub struct ProbeLog {
    module: String,
    target: String,
    format: LogFormat,
    lines: Mutex<Lines>,
}

/// The first lines up to the budget, then the newest ones.
#[derive(Default)]
struct Lines {
    head: Vec<String>,
    head_bytes: usize,
    tail: std::collections::VecDeque<String>,
    tail_bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// Bytes of this probe's lines written to the process log.
    mirrored_bytes: usize,
    /// The process log was told that further lines are not written.
    mirror_cut: bool,
}

/// Whether a line goes to the process log too.
enum Mirror {
    Yes,
    /// The budget is spent with this line: say so instead, once.
    CutNow,
    No,
}

impl Lines {
    /// A probe writes at most [`MAX_LOG_BYTES`] of lines to the process log
    /// (a target flooding a debug-level loop cannot flood the log); `enabled`
    /// says whether `--log.prober` lets the line through at all.
    fn mirror(&mut self, enabled: bool, len: usize) -> Mirror {
        if !enabled || self.mirror_cut {
            return Mirror::No;
        }
        if self.mirrored_bytes + len < MAX_LOG_BYTES {
            self.mirrored_bytes += len + 1;
            return Mirror::Yes;
        }
        self.mirror_cut = true;
        Mirror::CutNow
    }

    fn push(&mut self, line: String) {
        let len = line.len() + 1;
        if self.tail.is_empty() && self.head_bytes + len <= MAX_LOG_BYTES - TAIL_BYTES {
            self.head_bytes += len;
            self.head.push(line);
            return;
        }
        self.tail_bytes += len;
        self.tail.push_back(line);
        while self.tail_bytes > TAIL_BYTES && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len() + 1;
                self.dropped_lines += 1;
                self.dropped_bytes += old.len() as u64 + 1;
            }
        }
    }
}

/// A field value as logged: cut at [`MAX_FIELD_BYTES`].
fn field_text(v: &dyn std::fmt::Display) -> String {
    let mut s = v.to_string();
    if s.len() > MAX_FIELD_BYTES {
        let mut cut = MAX_FIELD_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let more = s.len() - cut;
        s.truncate(cut);
        s.push_str(&format!("…[{more} more bytes]"));
    }
    s
}

impl ProbeLog {
    pub fn new(module: &str, target: &str, format: LogFormat) -> Self {
        Self {
            module: module.to_string(),
            // A target's password (`http://user:pw@host/`) is never shown.
            target: crate::net::userinfo::redact(target),
            format,
            lines: Mutex::new(Lines::default()),
        }
    }

    pub fn debug(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Debug, msg, fields);
    }

    pub fn info(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Info, msg, fields);
    }

    pub fn warn(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Warn, msg, fields);
    }

    pub fn error(&self, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.log(Level::Error, msg, fields);
    }

    pub fn log(&self, level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        let line = self.line(level, msg, fields);
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match lines.mirror(mirror_enabled(level), line.len()) {
            Mirror::Yes => mirror(level, &line),
            Mirror::CutNow => {
                let note = self.line(
                    level,
                    "Further lines of this probe are not written to this log (see its debug page)",
                    &[("limit_bytes", &MAX_LOG_BYTES)],
                );
                mirror(level, &note);
            }
            Mirror::No => {}
        }
        lines.push(line);
    }

    /// One line in the log format, with `module` and `target`.
    fn line(&self, level: Level, msg: &str, fields: &[(&str, &dyn std::fmt::Display)]) -> String {
        let ts = rfc3339(SystemTime::now());
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(fields.len() + 5);
        pairs.push(("ts", ts));
        pairs.push(("level", level.as_str().to_string()));
        pairs.push(("module", self.module.clone()));
        pairs.push(("target", self.target.clone()));
        pairs.push(("msg", msg.to_string()));
        for (k, v) in fields {
            pairs.push((k, field_text(*v)));
        }
        match self.format {
            LogFormat::Logfmt => logfmt_line(&pairs),
            LogFormat::Json => json_line(&pairs),
        }
    }

    /// All lines kept, newline-terminated; where lines were dropped, one
    /// line says how many.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(lines.head_bytes + lines.tail_bytes + 128);
        for l in &lines.head {
            out.push_str(l);
            out.push('\n');
        }
        if lines.dropped_lines > 0 {
            out.push_str(&format!(
                "[… {} log lines ({} bytes) dropped: a probe log keeps at most {} KiB …]\n",
                lines.dropped_lines,
                lines.dropped_bytes,
                MAX_LOG_BYTES / 1024
            ));
        }
        for l in &lines.tail {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Whether `--log.prober` (the filter on the `probe` target) lets a line
/// of `level` into the process log.
fn mirror_enabled(level: Level) -> bool {
    match level {
        Level::Debug => tracing::enabled!(target: "probe", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "probe", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "probe", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "probe", tracing::Level::ERROR),
    }
}

/// Writes a probe's line to the process log at its level (`--log.prober`
/// filters the `probe` target; `logging` writes such lines as they are).
fn mirror(level: Level, line: &str) {
    match level {
        Level::Debug => tracing::debug!(target: "probe", "{line}"),
        Level::Info => tracing::info!(target: "probe", "{line}"),
        Level::Warn => tracing::warn!(target: "probe", "{line}"),
        Level::Error => tracing::error!(target: "probe", "{line}"),
    }
}

/// `key=value` pairs, quoting values that need it.
pub fn logfmt_line(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        let needs_quotes = v.is_empty()
            || v.chars()
                .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control());
        if needs_quotes {
            // Quoted logfmt values use JSON string escaping.
            out.push_str(&json_string(v));
        } else {
            out.push_str(v);
        }
    }
    out
}

fn json_line(pairs: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
    out
}

pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// RFC 3339 UTC timestamp with milliseconds (`2025-11-26T12:33:30.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    // Times before 1970 (a clock set wrong) show as the epoch.
    let t = t.max(UNIX_EPOCH);
    time::OffsetDateTime::from(t)
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_160_410_123);
        assert_eq!(rfc3339(t), "2025-11-26T12:33:30.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn logfmt_quotes() {
        let l = logfmt_line(&[
            ("msg", "Probe failed".into()),
            ("a", "b".into()),
            ("e", "".into()),
        ]);
        assert_eq!(l, "msg=\"Probe failed\" a=b e=\"\"");
    }

    #[test]
    fn the_log_is_bounded_and_keeps_its_end() {
        let log = ProbeLog::new("m", "t", LogFormat::Logfmt);
        let long = "x".repeat(60_000);
        for i in 0..2_000 {
            log.debug("Skipping line", &[("n", &i), ("line", &long)]);
        }
        log.error("Probe failed", &[("reason", &"expect_failed")]);
        let text = log.text();
        assert!(text.len() <= MAX_LOG_BYTES + 200, "{}", text.len());
        assert!(text.contains("more bytes]"), "fields are cut");
        assert!(text.contains("log lines ("), "the drop is said");
        assert!(text.contains("n=0 "), "the first line stays");
        assert!(
            text.trim_end().ends_with("reason=expect_failed"),
            "the last line stays"
        );
    }

    #[test]
    fn lines_carry_module_and_target() {
        let log = ProbeLog::new("http_2xx", "http://x", LogFormat::Json);
        log.info("Beginning probe", &[("probe", &"http")]);
        let text = log.text();
        assert!(text.contains("\"module\":\"http_2xx\""), "{text}");
        assert!(text.contains("\"probe\":\"http\""), "{text}");
    }
}
