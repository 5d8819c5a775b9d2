//! The landing page at `/`: what this exporter is, a form to run a probe,
//! the configured modules and the recent probes with their logs.
//!
//! Plain server-rendered HTML without JavaScript or external assets, so it
//! works behind restrictive Content-Security-Policy headers and in text
//! browsers: the probe form is an ordinary `GET` form, the tables are static.
//! Every link is relative so the page works behind a path prefix.
//! Targets, module names and failure reasons come from users (query
//! parameters, config), so everything dynamic goes through [`html_escape`]
//! (and, inside links, through percent-encoding first).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

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

/// `probe?target=..&module=..[&debug=true]`, percent-encoded but not yet
/// HTML-escaped.
fn probe_query(target: &str, module: &str, debug: bool) -> String {
    format!(
        "probe?target={}&module={}{}",
        utf8_percent_encode(target, QUERY),
        utf8_percent_encode(module, QUERY),
        if debug { "&debug=true" } else { "" }
    )
}

const STYLE: &str = "\
:root{--fg:#1f2328;--muted:#59636e;--line:#d8dee4;--bg:#f3f5f8;--card:#fff;--head:#f6f8fa;\
--accent:#0969da;--ok:#116329;--okbg:#dafbe1;--bad:#b3131f;--badbg:#ffebe9;--dark:#1f2a37}\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
color:var(--fg);background:var(--bg)}\
a{color:var(--accent);text-decoration:none}\
a:hover,a:focus{text-decoration:underline}\
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,\"DejaVu Sans Mono\",Menlo,Consolas,monospace;font-size:.86em}\
code{background:var(--head);border:1px solid var(--line);border-radius:4px;padding:0 .25rem}\
.wrap{max-width:82rem;margin:0 auto;padding:0 1.25rem}\
header.top{background:var(--dark);color:#fff}\
.bar{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem 2rem;\
padding-top:.85rem;padding-bottom:.85rem}\
header h1{margin:0;font-size:1.3rem;letter-spacing:.01em}\
header nav{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem}\
header nav a{color:#dbe7f5;font-weight:500}\
.pill{display:inline-block;border-radius:999px;padding:.05rem .65rem;font-size:.8rem;font-weight:600;\
vertical-align:middle;white-space:nowrap}\
.pill.version{background:rgba(255,255,255,.14);color:#fff;margin-left:.5rem}\
.pill.ok,.badge.ok{background:var(--okbg);color:var(--ok)}\
.pill.bad,.badge.fail{background:var(--badbg);color:var(--bad)}\
.status{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1rem;margin:1rem 0 .25rem;color:var(--muted)}\
.lead{margin:.5rem 0 1rem;max-width:60rem}\
.warn{border:1px solid #ff8182;background:var(--badbg);color:#82071e;border-radius:8px;padding:.6rem .9rem}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,27rem),1fr));gap:1rem;align-items:start;\
margin-bottom:1rem}\
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem 1.25rem;\
margin:0 0 1rem;min-width:0}\
.grid .card{margin:0}\
h2{font-size:1.08rem;margin:0 0 .75rem}\
h2 .count{font-weight:400;color:var(--muted);font-size:.9rem;margin-left:.4rem}\
form label{display:block;font-weight:600;font-size:.88rem;margin:0 0 .2rem}\
.opt{font-weight:400;color:var(--muted)}\
input[type=text],select{width:100%;font:inherit;padding:.42rem .55rem;border:1px solid #c3ccd5;\
border-radius:6px;background:#fff;color:var(--fg)}\
input[type=text]:focus,select:focus{outline:2px solid #54aeff;outline-offset:0;border-color:var(--accent)}\
.field{margin-bottom:.7rem}\
.row{display:grid;grid-template-columns:1fr 1fr;gap:0 .75rem}\
.actions{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.6rem}\
form .check{display:flex;align-items:center;gap:.4rem;font-weight:400;margin:0}\
button{font:inherit;font-weight:600;color:#fff;background:#1f883d;border:1px solid #1a7f37;\
border-radius:6px;padding:.42rem 1.3rem;cursor:pointer}\
button:hover{background:#1a7f37}\
.hint{color:var(--muted);font-size:.88rem;margin:.8rem 0 0}\
details{margin-top:.6rem;font-size:.88rem}\
summary{cursor:pointer;color:var(--accent)}\
pre{background:var(--head);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;overflow-x:auto;margin:.5rem 0 0}\
.scroll{overflow-x:auto}\
table{width:100%;border-collapse:collapse;font-size:.9rem}\
th,td{padding:.45rem .65rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\
th{background:var(--head);color:var(--muted);font-size:.76rem;font-weight:600;text-transform:uppercase;\
letter-spacing:.03em;white-space:nowrap}\
tbody tr:last-child td{border-bottom:0}\
tbody tr:hover td{background:#f8fafc}\
tr.failure td:first-child{box-shadow:inset 3px 0 var(--bad)}\
tr.success td:first-child{box-shadow:inset 3px 0 #4ac26b}\
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\
td.id{color:var(--muted);white-space:nowrap}\
td.target{word-break:break-all;min-width:14rem}\
td.reason{font-family:ui-monospace,SFMono-Regular,\"DejaVu Sans Mono\",Menlo,Consolas,monospace;\
font-size:.84rem;color:var(--bad);white-space:nowrap}\
td.when{white-space:nowrap}\
td.links{white-space:nowrap}\
td.links a+a{margin-left:.7rem}\
.badge{display:inline-block;border-radius:999px;padding:0 .6rem;font-size:.8rem;font-weight:600;white-space:nowrap}\
.badge strong{font-weight:inherit}\
.muted{color:var(--muted)}\
.small{font-size:.8rem}\
.empty{color:var(--muted);margin:.25rem 0}\
footer{color:var(--muted);font-size:.82rem;padding:.5rem 0 2rem}\
footer a{color:var(--muted);text-decoration:underline}\
@media (max-width:40rem){body{font-size:14px}.wrap{padding-left:.75rem;padding-right:.75rem}.row{grid-template-columns:1fr}\
.card{padding:.8rem}th,td{padding:.35rem .45rem}}";

/// Renders the complete landing page (HTML5, UTF-8).
pub fn render_landing(info: &LandingInfo) -> String {
    render_landing_at(info, SystemTime::now())
}

/// [`render_landing`] with the current time given (for "3 s ago").
fn render_landing_at(info: &LandingInfo, now: SystemTime) -> String {
    let rows = info.recent.len() + info.preserved.len();
    let mut h = String::with_capacity(12 * 1024 + 600 * rows);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>handshake_exporter</title>\n");
    let _ = writeln!(h, "<style>{STYLE}</style>");
    h.push_str("</head>\n<body>\n");

    render_header(&mut h, info);
    h.push_str("<main class=\"wrap\">\n");
    render_status(&mut h, info);
    h.push_str(
        "<p class=\"lead\">A blackbox_exporter-compatible Prometheus exporter for real-time \
         services. Each <code>probe</code> request runs one HTTP, WebSocket, TLS or TCP check \
         and answers with <code>probe_*</code> metrics, including a failure reason when it \
         fails. Probing the same service over plain HTTP and over WebSocket tells \
         &ldquo;the service is down&rdquo; apart from &ldquo;the WebSocket upgrade is \
         broken&rdquo; (typically a proxy dropping the Upgrade headers).</p>\n",
    );

    h.push_str("<div class=\"grid\">\n");
    render_form(&mut h, info);
    render_modules(&mut h, info);
    h.push_str("</div>\n");

    render_recent(&mut h, info, now);
    if !info.preserved.is_empty() {
        let _ = writeln!(
            h,
            "<section class=\"card\" id=\"preserved\">\n\
             <h2>Preserved failures <span class=\"count\">{}</span></h2>\n\
             <p class=\"hint note\">Older failures, kept after they dropped off the recent list \
             so that a burst of successful probes cannot hide them.</p>",
            info.preserved.len()
        );
        render_probe_table(&mut h, &info.preserved, now);
        h.push_str("</section>\n");
    }
    h.push_str("</main>\n");

    let _ = writeln!(
        h,
        "<footer class=\"wrap\">handshake_exporter {} &middot; \
         <a href=\"metrics\">metrics</a> &middot; <a href=\"config\">configuration</a> &middot; \
         <a href=\"-/healthy\">health</a> &middot; <a href=\"-/ready\">ready</a><br>\
         Probe history is kept in memory only and starts empty when the exporter restarts. \
         This page needs no JavaScript.</footer>",
        html_escape(&info.version)
    );
    h.push_str("</body>\n</html>\n");
    h
}

/// Dark title bar: name, version, navigation.
fn render_header(h: &mut String, info: &LandingInfo) {
    let _ = writeln!(
        h,
        "<header class=\"top\">\n<div class=\"wrap bar\">\n\
         <h1>handshake_exporter<span class=\"pill version\">v{}</span></h1>\n\
         <nav aria-label=\"Endpoints\"><a href=\"metrics\">Metrics</a>\
         <a href=\"config\">Configuration</a><a href=\"-/healthy\">Health</a>\
         <a href=\"-/ready\">Ready</a></nav>\n</div>\n</header>",
        html_escape(&info.version)
    );
}

/// Configuration status and counts, plus a warning after a failed reload.
fn render_status(h: &mut String, info: &LandingInfo) {
    let failed = info.recent.iter().filter(|e| !e.success).count();
    let config = if info.config_reload_ok {
        "<span class=\"pill ok\">Configuration loaded</span>"
    } else {
        "<span class=\"pill bad\">Configuration reload failed</span>"
    };
    let _ = writeln!(
        h,
        "<div class=\"status\">{config}<span>{}</span><span>{}, {failed} failed</span></div>",
        plural(info.modules.len(), "module", "modules"),
        plural(info.recent.len(), "recent probe", "recent probes"),
    );
    if !info.config_reload_ok {
        h.push_str(
            "<p class=\"warn\"><strong>The last configuration reload failed.</strong> \
             The previous configuration is still in force. Fix the file and reload \
             (<code>POST -/reload</code> or SIGHUP); the exporter log has the error.</p>\n",
        );
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The module the examples use: http_2xx like blackbox, unless the config
/// has no such module (a link that answers 400 is useless): then the first.
fn example_module(info: &LandingInfo) -> &str {
    if info.modules.is_empty() || info.modules.iter().any(|m| m.0 == "http_2xx") {
        "http_2xx"
    } else {
        info.modules[0].0.as_str()
    }
}

/// A plain GET form for `/probe`, example links and a scrape config.
fn render_form(h: &mut String, info: &LandingInfo) {
    let example = example_module(info);
    h.push_str(
        "<section class=\"card\" id=\"probe\">\n<h2>Run a probe</h2>\n\
         <form action=\"probe\" method=\"get\">\n\
         <div class=\"field\"><label for=\"target\">Target</label>\
         <input type=\"text\" id=\"target\" name=\"target\" required autocomplete=\"off\" \
         spellcheck=\"false\" placeholder=\"https://example.com/health or host:port\"></div>\n\
         <div class=\"row\">\n<div class=\"field\"><label for=\"module\">Module</label>\
         <select id=\"module\" name=\"module\">\n",
    );
    for (name, prober, _) in &info.modules {
        let selected = if name == example { " selected" } else { "" };
        let _ = writeln!(
            h,
            "<option value=\"{n}\"{selected}>{n} ({p})</option>",
            n = html_escape(name),
            p = html_escape(prober)
        );
    }
    h.push_str(
        "</select></div>\n\
         <div class=\"field\"><label for=\"hostname\">Hostname \
         <span class=\"opt\">(optional)</span></label>\
         <input type=\"text\" id=\"hostname\" name=\"hostname\" autocomplete=\"off\" \
         spellcheck=\"false\" placeholder=\"Host header and TLS server name\"></div>\n</div>\n\
         <div class=\"actions\"><label class=\"check\"><input type=\"checkbox\" name=\"debug\" \
         value=\"true\" checked> Debug output (probe log, metrics, module)</label>\
         <button type=\"submit\">Probe</button></div>\n</form>\n",
    );
    let query = html_escape(&probe_query("prometheus.io", example, false));
    let debug = html_escape(&probe_query("prometheus.io", example, true));
    let module = html_escape(example);
    let _ = writeln!(
        h,
        "<p class=\"hint\">Prometheus scrapes <code>probe?target=&hellip;&amp;module=&hellip;</code>; \
         every probe shows up below with its log. Try \
         <a href=\"{query}\">prometheus.io with {module}</a> \
         (<a href=\"{debug}\">debug</a>).</p>\n\
         <details><summary>Prometheus scrape config</summary><pre>scrape_configs:\n  \
         - job_name: handshake\n    metrics_path: /probe\n    params:\n      module: [{module}]\n    \
         static_configs:\n      - targets: [&#39;https://example.com&#39;]\n    relabel_configs:\n      \
         - source_labels: [__address__]\n        target_label: __param_target\n      \
         - source_labels: [__param_target]\n        target_label: instance\n      \
         - target_label: __address__\n        replacement: exporter-host:9115  \
         # this exporter</pre></details>\n</section>"
    );
}

fn render_modules(h: &mut String, info: &LandingInfo) {
    let _ = writeln!(
        h,
        "<section class=\"card\" id=\"modules\">\n<h2>Modules <span class=\"count\">{}</span></h2>",
        info.modules.len()
    );
    if info.modules.is_empty() {
        h.push_str("<p class=\"empty\">No modules configured.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<div class=\"scroll\"><table>\n\
         <thead><tr><th>Module</th><th>Prober</th><th>Timeout</th></tr></thead>\n<tbody>\n",
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
    h.push_str(
        "</tbody>\n</table></div>\n\
         <p class=\"hint\">A probe's deadline is the module timeout, capped by Prometheus' \
         scrape timeout. All settings, secrets masked: <a href=\"config\">configuration</a>.</p>\n\
         </section>\n",
    );
}

fn render_recent(h: &mut String, info: &LandingInfo, now: SystemTime) {
    let failed = info.recent.iter().filter(|e| !e.success).count();
    let _ = writeln!(
        h,
        "<section class=\"card\" id=\"recent\">\n<h2>Recent probes <span class=\"count\">{}, \
         {failed} failed &middot; newest first</span></h2>",
        info.recent.len()
    );
    if info.recent.is_empty() {
        h.push_str(
            "<p class=\"empty\">No probes yet. Run one with the form above, or point \
             Prometheus at <code>probe</code>.</p>\n",
        );
    } else {
        render_probe_table(h, &info.recent, now);
    }
    h.push_str("</section>\n");
}

/// One row per line (tests and `grep` rely on it).
fn render_probe_table(h: &mut String, entries: &[Arc<HistoryEntry>], now: SystemTime) {
    h.push_str(
        "<div class=\"scroll\"><table>\n<thead><tr><th>#</th><th>Finished (UTC)</th>\
         <th>Module</th><th>Target</th><th>Result</th><th>Failure reason</th>\
         <th class=\"num\">Duration</th><th>Log</th></tr></thead>\n<tbody>\n",
    );
    for e in entries {
        let (class, result) = if e.success {
            ("success", "<span class=\"badge ok\">Success</span>")
        } else {
            (
                "failure",
                "<span class=\"badge fail\"><strong>Failure</strong></span>",
            )
        };
        let stamp = crate::prober::log::rfc3339(e.finished_at);
        // "2025-11-26T12:33:30.123Z" shown as "2025-11-26 12:33:30".
        let shown = match (stamp.get(..10), stamp.get(11..19)) {
            (Some(date), Some(time)) => format!("{date} {time}"),
            _ => stamp.clone(),
        };
        let again = probe_query(&e.target, &e.module, true);
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td class=\"id\">{id}</td>\
             <td class=\"when\"><time datetime=\"{stamp}\">{shown}</time> \
             <span class=\"muted small\">{ago}</span></td>\
             <td>{module}</td><td class=\"target\">{target}</td><td>{result}</td>\
             <td class=\"reason\">{reason}</td><td class=\"num\">{ms:.1} ms</td>\
             <td class=\"links\"><a href=\"logs?id={id}\">Log</a>\
             <a href=\"{again}\" title=\"Run this probe again, with debug output\">Probe again</a>\
             </td></tr>",
            id = e.id,
            stamp = html_escape(&stamp),
            shown = html_escape(&shown),
            ago = ago(now, e.finished_at),
            module = html_escape(&e.module),
            target = html_escape(&e.target),
            reason = html_escape(e.failure_reason.as_deref().unwrap_or("")),
            ms = e.duration_seconds * 1000.0,
            again = html_escape(&again),
        );
    }
    h.push_str("</tbody>\n</table></div>\n");
}

/// "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
fn ago(now: SystemTime, then: SystemTime) -> String {
    let s = now.duration_since(then).map_or(0, |d| d.as_secs());
    match s {
        0..=1 => "just now".to_string(),
        2..=119 => format!("{s} s ago"),
        120..=7_199 => format!("{} min ago", s / 60),
        7_200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const FINISHED: u64 = 1_764_160_410;

    fn entry(id: u64, module: &str, target: &str, reason: Option<&str>) -> Arc<HistoryEntry> {
        Arc::new(HistoryEntry {
            id,
            module: module.to_string(),
            target: target.to_string(),
            success: reason.is_none(),
            failure_reason: reason.map(str::to_string),
            duration_seconds: 0.12345,
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(FINISHED),
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

    fn at(secs_after: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(FINISHED + secs_after)
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
        // No external assets, no inline event handlers.
        assert!(!page.contains("src="));
        assert!(!page.contains("<link"));
        assert!(!page.contains("url("));
        assert!(!page.contains("@import"));
        let handler = regex::Regex::new(r"(?i)\son[a-z]+\s*=").unwrap();
        assert!(!handler.is_match(&page), "inline event handler");
        assert!(!page.contains("javascript:"));
    }

    #[test]
    fn header_shows_version_and_config_status() {
        let page = render_landing(&info());
        assert!(page.contains("<h1>handshake_exporter<span class=\"pill version\">v0.1.0</span>"));
        assert!(page.contains("<span class=\"pill ok\">Configuration loaded</span>"));
        assert!(page.contains("<span>2 modules</span><span>2 recent probes, 1 failed</span>"));
        assert!(!page.contains("reload failed"));
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
        assert!(page.contains("href=\"-/ready\""));
        assert!(page.contains("href=\"logs?id=1\""));
        assert!(page.contains("href=\"logs?id=0\""));
        assert!(page.contains(
            "href=\"probe?target=wss%3A%2F%2Fexample.com%2Fws&amp;module=ws_upgrade&amp;debug=true\""
        ));
        assert!(!page.contains("href=\"/"));
        assert!(!page.contains("action=\"/"));
    }

    #[test]
    fn probe_form_works_without_javascript() {
        let page = render_landing(&info());
        assert!(page.contains("<form action=\"probe\" method=\"get\">"));
        assert!(page.contains("<input type=\"text\" id=\"target\" name=\"target\" required"));
        assert!(page.contains("<select id=\"module\" name=\"module\">"));
        assert!(page.contains("<option value=\"http_2xx\" selected>http_2xx (http)</option>"));
        assert!(page.contains("<option value=\"ws_upgrade\">ws_upgrade (websocket)</option>"));
        assert!(page.contains("name=\"hostname\""));
        assert!(page.contains("<input type=\"checkbox\" name=\"debug\" value=\"true\" checked>"));
        assert!(page.contains("<button type=\"submit\">Probe</button>"));
        assert_eq!(page.matches("<form").count(), 1);
    }

    #[test]
    fn example_uses_first_module_when_http_2xx_missing() {
        let mut i = info();
        i.modules = vec![("my mod".to_string(), "tcp".to_string(), None)];
        let page = render_landing(&i);
        assert!(page.contains("href=\"probe?target=prometheus.io&amp;module=my%20mod\""));
        assert!(page.contains("<option value=\"my mod\" selected>my mod (tcp)</option>"));
        assert!(page.contains("module: [my mod]"));
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
        i.preserved = vec![entry(3, "a'b", "x\" onmouseover=\"alert(3)", Some("r"))];
        i.version = "<i>1</i>".to_string();
        let page = render_landing(&i);
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>"));
        assert!(!page.contains("<i>"));
        assert!(!page.contains("\" onmouseover"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("http://x/&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;reason&lt;/b&gt;"));
        assert!(page.contains("<option value=\"&lt;script&gt;m&lt;/script&gt;\">"));
        assert!(page.contains("<td>a&#39;b</td>"));
        // Links carry percent-encoded values.
        assert!(page.contains(
            "href=\"probe?target=http%3A%2F%2Fx%2F%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E\
             &amp;module=%3Cscript%3Ealert%281%29%3C%2Fscript%3E&amp;debug=true\""
        ));
    }

    #[test]
    fn rows_show_result_reason_time_and_duration() {
        let page = render_landing_at(&info(), at(42));
        let fail_row = page
            .lines()
            .find(|l| l.contains("logs?id=1"))
            .expect("row for probe 1");
        assert!(fail_row.starts_with("<tr class=\"failure\">"));
        assert!(fail_row.contains("<strong>Failure</strong>"));
        assert!(fail_row.contains("<td class=\"reason\">upgrade_rejected</td>"));
        assert!(fail_row.contains("<td>ws_upgrade</td>"));
        assert!(fail_row.contains("wss://example.com/ws"));
        assert!(
            fail_row
                .contains("<time datetime=\"2025-11-26T12:33:30.000Z\">2025-11-26 12:33:30</time>")
        );
        assert!(fail_row.contains("42 s ago"));
        assert!(fail_row.contains("<td class=\"num\">123.5 ms</td>"));
        let ok_row = page
            .lines()
            .find(|l| l.contains("logs?id=0"))
            .expect("row for probe 0");
        assert!(ok_row.starts_with("<tr class=\"success\">"));
        assert!(ok_row.contains("<span class=\"badge ok\">Success</span>"));
        assert!(ok_row.contains("<td class=\"reason\"></td>"));
        // Newest first, as given.
        assert!(page.find("logs?id=1") < page.find("logs?id=0"));
    }

    #[test]
    fn relative_times() {
        let t = at(0);
        assert_eq!(ago(at(0), t), "just now");
        assert_eq!(ago(at(1), t), "just now");
        assert_eq!(ago(at(5), t), "5 s ago");
        assert_eq!(ago(at(119), t), "119 s ago");
        assert_eq!(ago(at(150), t), "2 min ago");
        assert_eq!(ago(at(3 * 3600 + 5), t), "3 h ago");
        assert_eq!(ago(at(3 * 86_400), t), "3 d ago");
        // Clock went backwards.
        assert_eq!(ago(t, at(10)), "just now");
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
        assert!(page.contains("<h2>Preserved failures <span class=\"count\">1</span></h2>"));
        assert!(page.contains("connect_timeout"));
        assert!(page.contains("No probes yet."));
        assert!(page.contains("<span class=\"pill bad\">Configuration reload failed</span>"));
        assert!(page.contains("configuration reload failed"));
    }

    #[test]
    fn empty_config_and_history() {
        let page = render_landing(&LandingInfo::default());
        assert!(page.contains("No modules configured."));
        assert!(page.contains("No probes yet."));
        assert!(page.contains("<span>0 modules</span><span>0 recent probes, 0 failed</span>"));
        assert!(page.contains("href=\"probe?target=prometheus.io&amp;module=http_2xx\""));
    }
}
