//! The log of one probe: kept in memory for `debug=true` and `/logs`, and
//! mirrored to the process log at debug level.
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

/// Collected log lines of one probe.
pub struct ProbeLog {
    module: String,
    target: String,
    format: LogFormat,
    lines: Mutex<Vec<String>>,
}

impl ProbeLog {
    pub fn new(module: &str, target: &str, format: LogFormat) -> Self {
        Self {
            module: module.to_string(),
            // A target's password (`http://user:pw@host/`) is never shown.
            target: crate::net::userinfo::redact(target),
            format,
            lines: Mutex::new(Vec::new()),
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
        let ts = rfc3339(SystemTime::now());
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(fields.len() + 5);
        pairs.push(("ts", ts));
        pairs.push(("level", level.as_str().to_string()));
        pairs.push(("module", self.module.clone()));
        pairs.push(("target", self.target.clone()));
        pairs.push(("msg", msg.to_string()));
        for (k, v) in fields {
            pairs.push((k, v.to_string()));
        }
        let line = match self.format {
            LogFormat::Logfmt => logfmt_line(&pairs),
            LogFormat::Json => json_line(&pairs),
        };
        tracing::debug!(target: "probe", "{line}");
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    /// All lines, newline-terminated.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for l in lines.iter() {
            out.push_str(l);
            out.push('\n');
        }
        out
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
    fn lines_carry_module_and_target() {
        let log = ProbeLog::new("http_2xx", "http://x", LogFormat::Json);
        log.info("Beginning probe", &[("probe", &"http")]);
        let text = log.text();
        assert!(text.contains("\"module\":\"http_2xx\""), "{text}");
        assert!(text.contains("\"probe\":\"http\""), "{text}");
    }
}
