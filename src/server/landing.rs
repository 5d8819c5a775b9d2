//! The landing page at `/`: links, configured modules and recent probes.
//!
//! Plain server-rendered HTML without JavaScript or external assets, so it
//! works behind restrictive Content-Security-Policy headers and in text
//! browsers. Every link is relative so the page works behind a path prefix.
//! Targets, module names and failure reasons come from users (query
//! parameters, config), so everything dynamic goes through [`html_escape`].

use std::fmt::Write as _;
use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::history::HistoryEntry;

/// What the landing page shows.
#[derive(Debug, Clone, Default)]
pub struct LandingInfo {
    pub version: String,
    /// (name, prober, timeout in seconds if the module sets one).
    pub modules: Vec<(String, String, Option<f64>)>,
    /// Newest first.
    pub recent: Vec<Arc<HistoryEntry>>,
    /// Newest first.
    pub preserved: Vec<Arc<HistoryEntry>>,
    /// False when the last `/-/reload` or SIGHUP failed and the previous
    /// config is still in force.
    pub config_reload_ok: bool,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Query-component encoding: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
margin:1.5rem auto;max-width:72rem;padding:0 1rem;line-height:1.45;color:#1f2328}\
h1{margin-bottom:.25rem}\
.version{color:#59636e;margin-top:0}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.92rem}\
th,td{border:1px solid #d1d9e0;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}\
tr:nth-child(even) td{background:#fbfcfd}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.target{word-break:break-all}\
tr.failure td{background:#fff5f5}\
tr.failure strong{color:#cf222e}\
.warn{border:1px solid #cf222e;background:#fff5f5;color:#82071e;padding:.5rem .75rem}\
code{background:#f6f8fa;padding:0 .2rem}";

/// Renders the complete landing page (HTML5, UTF-8).
pub fn render_landing(info: &LandingInfo) -> String {
    let mut h = String::with_capacity(4096);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>handshake_exporter</title>\n");
    let _ = writeln!(h, "<style>{STYLE}</style>");
    h.push_str("</head>\n<body>\n<h1>handshake_exporter</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"version\">Version {}</p>",
        html_escape(&info.version)
    );
    h.push_str(
        "<p>A blackbox_exporter-compatible Prometheus exporter for real-time services. \
         Each <code>/probe</code> request runs one HTTP, WebSocket, TLS or TCP check and \
         answers with <code>probe_*</code> metrics, including a failure reason when it fails. \
         Probing the same service over plain HTTP and over WebSocket tells \
         &ldquo;the service is down&rdquo; apart from &ldquo;the WebSocket upgrade is \
         broken&rdquo; (typically a proxy or load balancer dropping the Upgrade headers).</p>\n",
    );

    if !info.config_reload_ok {
        h.push_str(
            "<p class=\"warn\"><strong>The last configuration reload failed.</strong> \
             The previous configuration is still in force; see the exporter log.</p>\n",
        );
    }

    render_links(&mut h, info);
    render_modules(&mut h, info);

    h.push_str("<h2>Recent probes</h2>\n");
    if info.recent.is_empty() {
        h.push_str("<p>No probes yet.</p>\n");
    } else {
        render_probe_table(&mut h, &info.recent);
    }
    if !info.preserved.is_empty() {
        h.push_str("<h2>Preserved failures</h2>\n");
        h.push_str("<p>Older failures kept after they dropped off the recent list.</p>\n");
        render_probe_table(&mut h, &info.preserved);
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn render_links(h: &mut String, info: &LandingInfo) {
    // The example uses http_2xx like blackbox, unless the config has no such
    // module: then a link that would answer 400 is useless, use the first one.
    let module = if info.modules.is_empty() || info.modules.iter().any(|m| m.0 == "http_2xx") {
        "http_2xx"
    } else {
        info.modules[0].0.as_str()
    };
    let query = format!(
        "probe?target=prometheus.io&module={}",
        utf8_percent_encode(module, QUERY)
    );
    let module = html_escape(module);
    h.push_str("<ul>\n");
    let _ = writeln!(
        h,
        "<li><a href=\"{q}\">Probe prometheus.io for {module}</a></li>\n\
         <li><a href=\"{q}&amp;debug=true\">Debug probe prometheus.io for {module}</a></li>",
        q = html_escape(&query)
    );
    h.push_str(
        "<li><a href=\"metrics\">Metrics</a></li>\n\
         <li><a href=\"config\">Configuration</a></li>\n\
         <li><a href=\"-/healthy\">Health</a></li>\n</ul>\n",
    );
}

fn render_modules(h: &mut String, info: &LandingInfo) {
    h.push_str("<h2>Modules</h2>\n");
    if info.modules.is_empty() {
        h.push_str("<p>No modules configured.</p>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>Module</th><th>Prober</th><th>Timeout</th></tr></thead>\n<tbody>\n",
    );
    for (name, prober, timeout) in &info.modules {
        let timeout = match timeout {
            Some(t) => format!("{t}s"),
            None => "scrape timeout".to_string(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(name),
            html_escape(prober),
            html_escape(&timeout)
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

fn render_probe_table(h: &mut String, entries: &[Arc<HistoryEntry>]) {
    h.push_str(
        "<table>\n<thead><tr><th>Id</th><th>Time (UTC)</th><th>Module</th><th>Target</th>\
         <th>Result</th><th>Failure reason</th><th>Duration</th><th>Log</th></tr></thead>\n<tbody>\n",
    );
    for e in entries {
        let (class, result) = if e.success {
            ("", "Success")
        } else {
            (" class=\"failure\"", "<strong>Failure</strong>")
        };
        let _ = writeln!(
            h,
            "<tr{class}><td class=\"num\">{id}</td><td>{time}</td><td>{module}</td>\
             <td class=\"target\">{target}</td><td>{result}</td><td>{reason}</td>\
             <td class=\"num\">{ms:.1} ms</td><td><a href=\"logs?id={id}\">Log</a></td></tr>",
            id = e.id,
            time = crate::probe_log::rfc3339(e.finished_at),
            module = html_escape(&e.module),
            target = html_escape(&e.target),
            reason = html_escape(e.failure_reason.as_deref().unwrap_or("")),
            ms = e.duration_seconds * 1000.0,
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn entry(id: u64, module: &str, target: &str, reason: Option<&str>) -> Arc<HistoryEntry> {
        Arc::new(HistoryEntry {
            id,
            module: module.to_string(),
            target: target.to_string(),
            success: reason.is_none(),
            failure_reason: reason.map(str::to_string),
            duration_seconds: 0.12345,
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_160_410),
            debug_output: String::new(),
        })
    }

    fn info() -> LandingInfo {
        LandingInfo {
            version: "0.1.0".to_string(),
            modules: vec![
                ("http_2xx".to_string(), "http".to_string(), Some(5.0)),
                ("ws_upgrade".to_string(), "websocket".to_string(), None),
            ],
            recent: vec![
                entry(
                    1,
                    "ws_upgrade",
                    "wss://example.com/ws",
                    Some("upgrade_rejected"),
                ),
                entry(0, "http_2xx", "https://example.com", None),
            ],
            preserved: vec![],
            config_reload_ok: true,
        }
    }

    #[test]
    fn escapes_all_special_characters() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(html_escape("plain ü"), "plain ü");
    }

    #[test]
    fn page_is_complete_html_without_script() {
        let page = render_landing(&info());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<title>handshake_exporter</title>"));
        assert!(page.trim_end().ends_with("</html>"));
        assert!(!page.to_ascii_lowercase().contains("<script"));
        // No external assets.
        assert!(!page.contains("src="));
        assert!(!page.contains("<link"));
    }

    #[test]
    fn links_are_relative_and_present() {
        let page = render_landing(&info());
        assert!(page.contains("href=\"probe?target=prometheus.io&amp;module=http_2xx\""));
        assert!(
            page.contains("href=\"probe?target=prometheus.io&amp;module=http_2xx&amp;debug=true\"")
        );
        assert!(page.contains("href=\"metrics\""));
        assert!(page.contains("href=\"config\""));
        assert!(page.contains("href=\"-/healthy\""));
        assert!(page.contains("href=\"logs?id=1\""));
        assert!(page.contains("href=\"logs?id=0\""));
        assert!(!page.contains("href=\"/"));
    }

    #[test]
    fn example_uses_first_module_when_http_2xx_missing() {
        let mut i = info();
        i.modules = vec![("my mod".to_string(), "tcp".to_string(), None)];
        let page = render_landing(&i);
        assert!(page.contains("href=\"probe?target=prometheus.io&amp;module=my%20mod\""));
    }

    #[test]
    fn user_controlled_values_are_escaped() {
        let mut i = info();
        i.modules
            .push(("<script>m</script>".to_string(), "http".to_string(), None));
        i.recent = vec![entry(
            7,
            "<script>alert(1)</script>",
            "http://x/\"><script>alert(2)</script>",
            Some("<b>reason</b>"),
        )];
        let page = render_landing(&i);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("http://x/&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;reason&lt;/b&gt;"));
    }

    #[test]
    fn rows_show_result_reason_time_and_duration() {
        let page = render_landing(&info());
        let fail_row = page
            .lines()
            .find(|l| l.contains("logs?id=1"))
            .expect("row for probe 1");
        assert!(fail_row.contains("<strong>Failure</strong>"));
        assert!(fail_row.contains("<td>upgrade_rejected</td>"));
        assert!(fail_row.contains("wss://example.com/ws"));
        assert!(fail_row.contains("2025-11-26T12:33:30"));
        assert!(fail_row.contains("123.5 ms"));
        let ok_row = page
            .lines()
            .find(|l| l.contains("logs?id=0"))
            .expect("row for probe 0");
        assert!(ok_row.contains("<td>Success</td>"));
        // Newest first, as given.
        assert!(page.find("logs?id=1") < page.find("logs?id=0"));
    }

    #[test]
    fn modules_table_and_preserved_section() {
        let mut i = info();
        let page = render_landing(&i);
        assert!(page.contains("<td>http_2xx</td><td>http</td><td>5s</td>"));
        assert!(page.contains("<td>ws_upgrade</td><td>websocket</td><td>scrape timeout</td>"));
        assert!(!page.contains("Preserved failures"));

        i.preserved = vec![entry(0, "tcp_connect", "db:5432", Some("connect_timeout"))];
        i.recent.clear();
        i.config_reload_ok = false;
        let page = render_landing(&i);
        assert!(page.contains("<h2>Preserved failures</h2>"));
        assert!(page.contains("connect_timeout"));
        assert!(page.contains("No probes yet."));
        assert!(page.contains("configuration reload failed"));
    }
}
