//! Property tests of the tcp `query_response` engine: config building of
//! generated dialogs, and the steps run against an in-memory peer
//! (`tokio::io::duplex`): which lines an `expect` takes, and what `send`
//! and `labels` make of the captures.

use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use super::*;
use crate::config::ConfigError;
use crate::net::policy::TargetPolicy;
use crate::prober::ProbeLimits;
use crate::prober::log::{LogFormat, ProbeLog};
use crate::prober::metrics::ProbeMetrics;
use crate::prober::registry::test_support::{self, Piece, load, render, tcp, yaml_quote as quote};

/// What the peer saw and what the probe recorded.
struct Dialog {
    result: Result<(), ProbeFailure>,
    sent: Vec<u8>,
    metrics: ProbeMetrics,
}

/// Run the module's steps as `probe` does, against a peer that sends
/// `incoming`, closes its side and records what it receives.
fn run_dialog(s: &TcpSettings, incoming: &[u8]) -> Dialog {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        server.write_all(incoming).await.expect("buffered");
        server.shutdown().await.expect("half close");
        let metrics = ProbeMetrics::new(TcpSettings::METRICS);
        let log = ProbeLog::new("m", "peer", LogFormat::Logfmt);
        let targets = TargetPolicy::new(Vec::new());
        let cx = ProbeContext {
            metrics: &metrics,
            log: &log,
            deadline: Instant::now() + Duration::from_secs(10),
            hostname: None,
            targets: &targets,
            limits: ProbeLimits::default(),
            session: None,
            on_deadline: Mutex::new(FailureReason::Timeout),
        };
        let mut reader = Some(BufReader::new(Box::new(client) as Box<dyn Stream>));
        let mut result = Ok(());
        for (i, step) in s.query_response.iter().enumerate() {
            let Some(r) = reader.take() else { break };
            match run_step(&cx, r, step, i, s, "peer").await {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(reader);
        let mut sent = Vec::new();
        server
            .read_to_end(&mut sent)
            .await
            .expect("read what was sent");
        Dialog {
            result,
            sent,
            metrics,
        }
    })
}

// --- expansion ---------------------------------------------------------------

/// Template pieces for the CAPTURING regex below.
fn piece() -> impl Strategy<Value = Piece> {
    test_support::piece("[^$\\n\\r]{1,6}", 6, &["word", "tail", "nope"])
}

/// The regex of the expansion properties, with what each group captures
/// when it matches `word SEP digits tail`: 1 `word`, 2 digits, 3 `tail`
/// (absent when empty), 4 never takes part.
const CAPTURING: &str = r"^(?P<word>[a-z]*)SEP([0-9]+)(?P<tail>[^0-9].*)?(\x00)?$";

#[derive(Debug, Clone)]
struct Line {
    word: String,
    sep: String,
    digits: String,
    tail: String,
}

impl Line {
    fn text(&self) -> String {
        format!("{}{}{}{}", self.word, self.sep, self.digits, self.tail)
    }

    /// The expansion of `pieces`, restated: each group's text as generated.
    fn expand(&self, pieces: &[Piece]) -> String {
        let whole = self.text();
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Group(0) => whole.as_str(),
                Piece::Group(1) | Piece::Named("word") => self.word.as_str(),
                Piece::Group(2) => self.digits.as_str(),
                Piece::Group(3) | Piece::Named("tail") => self.tail.as_str(),
                Piece::Group(_) | Piece::Named(_) => "",
                Piece::Dollar => "$",
            })
            .collect()
    }
}

fn line() -> impl Strategy<Value = Line> {
    (
        "[a-z]{0,6}",
        "[-:=,;/ ]{1,3}",
        "[0-9]{1,5}",
        prop_oneof![Just(String::new()), "[^0-9\\pC][^\\pC]{0,8}"],
    )
        .prop_map(|(word, sep, digits, tail)| Line {
            word,
            sep,
            digits,
            tail,
        })
}

/// A module whose one step expects [`CAPTURING`] (with `sep` for SEP) and
/// sends `template`, with `template` as the value of label `l` too.
fn capturing_module(sep: &str, template: &str) -> String {
    let re = CAPTURING.replace("SEP", &regex::escape(sep));
    format!(
        "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: {}\n          send: {}\n          labels:\n            - name: l\n              value: {}\n",
        quote(&re),
        quote(template),
        quote(template)
    )
}

// --- expect over lines ---------------------------------------------------------

/// Regexes for the line-scanning properties.
const LINE_REGEXES: &[&str] = &["^a", "b$", "^$", "ab", "^(a|b)b", "a{3}", "^b*$", "ba+b"];

/// Lines as the peer writes them: each with `\n`, `\r\n` or (last only)
/// nothing before the end of the stream.
fn wire(lines: &[(String, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (text, ending)) in lines.iter().enumerate() {
        out.extend_from_slice(text.as_bytes());
        match ending {
            0 if i + 1 == lines.len() => {}
            1 => out.extend_from_slice(b"\r\n"),
            _ => out.push(b'\n'),
        }
    }
    out
}

/// The lines `expect` gets, restated: a line ends at `\n` (a `\r` before
/// it is dropped) or at the end of the stream if it has any bytes.
fn lines_read(lines: &[(String, u8)]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (text, ending)) in lines.iter().enumerate() {
        let unterminated = *ending == 0 && i + 1 == lines.len();
        if !(unterminated && text.is_empty()) {
            out.push(text.clone());
        }
    }
    out
}

fn expects_module(regexes: &[&str]) -> String {
    let mut s = String::from("modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n");
    for re in regexes {
        s.push_str(&format!("        - expect: {}\n", quote(re)));
    }
    s
}

// --- config building -------------------------------------------------------------

/// Patterns for generated steps, valid and not.
const PATTERNS: &[&str] = &[
    "^a",
    "(?i)ok",
    "",
    "^PING :(?P<token>.+)",
    "(",
    "[a-",
    "a{2,1}",
    "(?P<x>a)(?P<x>b)",
    "\\",
    "(?P<",
    "\\p{NoSuchClass}",
];

/// Compiles past the regex size limit (and takes a while doing so).
const TOO_BIG: &str = "a{1000}{1000}{1000}";

#[derive(Debug, Clone)]
struct GenStep {
    expect: Option<&'static str>,
    expect_bytes: Option<String>,
    send: Option<String>,
    labels: Vec<(String, String)>,
    starttls: bool,
}

fn gen_step() -> impl Strategy<Value = GenStep> {
    (
        prop::option::of(prop_oneof![
            30 => prop::sample::select(PATTERNS),
            1 => Just(TOO_BIG),
        ]),
        prop::option::weighted(0.2, "[a-z]{0,3}"),
        prop::option::of("[^\\pC]{0,8}"),
        prop::collection::vec(
            (
                prop_oneof![4 => "[a-zA-Z_][a-zA-Z0-9_]{0,5}", 1 => "[0-9-]?[a-z.-]{0,3}"],
                "[^\\pC]{0,6}",
            ),
            0..3,
        ),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(expect, expect_bytes, send, labels, starttls)| GenStep {
            expect,
            expect_bytes,
            send,
            labels,
            starttls,
        })
}

fn steps_module(steps: &[GenStep]) -> String {
    let mut s = String::from("modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n");
    if steps.is_empty() {
        s.push_str("        []\n");
    }
    for step in steps {
        s.push_str("        - starttls: ");
        s.push_str(if step.starttls { "true\n" } else { "false\n" });
        if let Some(e) = step.expect {
            s.push_str(&format!("          expect: {}\n", quote(e)));
        }
        if let Some(b) = &step.expect_bytes {
            s.push_str(&format!("          expect_bytes: {}\n", quote(b)));
        }
        if let Some(t) = &step.send {
            s.push_str(&format!("          send: {}\n", quote(t)));
        }
        if !step.labels.is_empty() {
            s.push_str("          labels:\n");
            for (name, value) in &step.labels {
                s.push_str(&format!(
                    "            - name: {}\n              value: {}\n",
                    quote(name),
                    quote(value)
                ));
            }
        }
    }
    s
}

/// Why step `i` is refused, restated from the rules; None if it is fine.
fn step_error(step: &GenStep) -> Option<&'static str> {
    let expect_bytes = step.expect_bytes.as_deref().is_some_and(|b| !b.is_empty());
    if step.expect.is_some() && expect_bytes {
        return Some("mutually exclusive");
    }
    if let Some(p) = step.expect
        && regex::bytes::Regex::new(p).is_err()
    {
        return Some("invalid regexp");
    }
    let label_ok = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if step.labels.iter().any(|(n, _)| !label_ok(n)) {
        return Some("invalid label name");
    }
    None
}

proptest! {
    #![proptest_config(crate::net::proptest_config(128))]

    #[test]
    fn send_expands_exactly_the_captured_text(
        l in line(),
        pieces in prop::collection::vec(piece(), 0..8),
    ) {
        let template = render(&pieces);
        let c = load(&capturing_module(&l.sep, &template)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let s = tcp(&c, "t");
        let d = run_dialog(&s, format!("{}\r\n", l.text()).as_bytes());
        prop_assert!(d.result.is_ok(), "{:?}", d.result.err());
        let want = l.expand(&pieces);
        // An empty send is skipped; a template that expands to nothing
        // still sends its newline.
        let sent = if template.is_empty() { String::new() } else { format!("{want}\n") };
        prop_assert_eq!(String::from_utf8_lossy(&d.sent), sent);
        prop_assert_eq!(d.metrics.get("probe_expect_info", &[("l", &want)]), Some(1.0));
    }

    #[test]
    fn a_template_without_dollar_is_sent_unchanged(
        l in line(),
        template in "[^$\\n\\r]{1,20}",
    ) {
        let c = load(&capturing_module(&l.sep, &template)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = run_dialog(&tcp(&c, "t"), format!("{}\n", l.text()).as_bytes());
        prop_assert!(d.result.is_ok());
        prop_assert_eq!(d.sent, format!("{template}\n").into_bytes());
    }

    #[test]
    fn without_expect_send_is_not_expanded(template in "[^\\n\\r]{1,20}") {
        let yaml = format!(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: {}\n",
            quote(&template)
        );
        let c = load(&yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = run_dialog(&tcp(&c, "t"), b"");
        prop_assert!(d.result.is_ok());
        prop_assert_eq!(d.sent, format!("{template}\n").into_bytes());
    }

    #[test]
    fn expects_take_the_first_matching_line_in_order(
        regexes in prop::collection::vec(prop::sample::select(LINE_REGEXES), 1..4),
        lines in prop::collection::vec(("[ab]{0,4}", 0u8..3), 0..8),
    ) {
        let c = load(&expects_module(&regexes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = run_dialog(&tcp(&c, "t"), &wire(&lines));
        // Restated: each expect scans on from where the previous one
        // stopped and takes the first line its regex matches.
        let read = lines_read(&lines);
        let mut next = 0;
        let mut all_matched = true;
        for re in &regexes {
            let re = regex::Regex::new(re).expect("valid");
            match read[next..].iter().position(|l| re.is_match(l)) {
                Some(k) => next += k + 1,
                None => {
                    all_matched = false;
                    break;
                }
            }
        }
        match &d.result {
            Ok(()) => prop_assert!(all_matched, "matched although no line should: {:?}", read),
            Err(f) => {
                prop_assert!(!all_matched, "failed although lines match: {:?} {:?}", read, f);
                prop_assert_eq!(f.reason, FailureReason::ExpectFailed);
            }
        }
        let regex_failed = d.metrics.get("probe_failed_due_to_regex", &[]);
        prop_assert_eq!(regex_failed, Some(if all_matched { 0.0 } else { 1.0 }));
        prop_assert!(d.sent.is_empty());
    }

    #[test]
    fn generated_dialogs_build_or_name_the_first_bad_step(
        steps in prop::collection::vec(gen_step(), 0..5),
    ) {
        let yaml = steps_module(&steps);
        let first_bad = steps.iter().enumerate().find_map(|(i, s)| step_error(s).map(|e| (i, e)));
        match (load(&yaml), first_bad) {
            (Ok(c), None) => {
                let built = tcp(&c, "t");
                prop_assert_eq!(built.query_response.len(), steps.len());
                for (b, g) in built.query_response.iter().zip(&steps) {
                    prop_assert_eq!(b.expect.as_ref().map(|r| r.as_str()), g.expect);
                    prop_assert_eq!(
                        b.expect_bytes.as_deref(),
                        g.expect_bytes.as_deref().filter(|e| !e.is_empty()).map(str::as_bytes)
                    );
                    prop_assert_eq!(
                        b.send.as_deref(),
                        g.send.as_deref().filter(|e| !e.is_empty()).map(str::as_bytes)
                    );
                    prop_assert_eq!(b.starttls, g.starttls);
                    prop_assert_eq!(&b.labels, &g.labels);
                }
            }
            (Err(ConfigError::Invalid { module, key, message }), Some((i, why))) => {
                prop_assert_eq!(module, "t");
                let want_key = format!("tcp.query_response[{i}]");
                prop_assert!(key.starts_with(&want_key), "{} is not about step {}", key, i);
                prop_assert!(message.contains(why), "{}: {}", key, message);
            }
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "got {:?}, want error {want:?}\n{yaml}",
                    got.map(|_| "a loaded config")
                )));
            }
        }
    }
}
