//! Property tests of loading whole documents: garbage and mutated configs
//! load or fail with an error (never a panic), and generated modules load
//! with the name, prober and timeout they were written with.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::test_support::*;
use super::*;

/// A valid document using much of the schema: every prober, query_response
/// dialogs, `!!binary`, headers, secrets, a target policy.
const VALID: &str = r#"target_policy:
  deny: ["169.254.0.0/16"]
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      method: POST
      valid_status_codes: [200, 204]
      headers:
        X-A: "a"
      body: "hello"
      fail_if_body_matches_regexp: ["err(or)?"]
      basic_auth:
        username: alice
        password: secret
      body_size_limit: 1MiB
  tcp_irc:
    prober: tcp
    timeout: 1m30s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: "NICK prober"
        - expect: "^:[^ ]+ 001"
        - expect: "^PING :(?P<token>.+)"
          send: "PONG ${token}"
          labels:
            - name: token
              value: "${token}"
        - send: !!binary AAAACATSFi8=
  tls_connect:
    prober: tls
    timeout: 500ms
    tls:
      tls_config:
        insecure_skip_verify: true
  ws:
    prober: websocket
    timeout: 2s
    websocket:
      ping: true
      subprotocols: [graphql-ws]
      max_message_bytes: 64KiB
      headers:
        Origin: https://example.com
      query_response:
        - expect: "^hello (.+)"
          send: "hi ${1}"
        - send_binary: !!binary AAECAw==
  d:
    prober: dns
    dns:
      query_name: example.com
  i:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
      payload_size: 100
      dont_fragment: true
      ttl: 5
"#;

/// Bits of YAML and of this schema, for documents that look like configs.
const TOKENS: &[&str] = &[
    "modules:",
    "prober:",
    "timeout:",
    "http:",
    "tcp:",
    "tls:",
    "websocket:",
    "dns:",
    "icmp:",
    "ttl: 300",
    "query_response:",
    "expect:",
    "send:",
    "send_binary:",
    "labels:",
    "starttls: true",
    "tls_config:",
    "ca_file: x",
    "target_policy:",
    "allow:",
    "deny:",
    "headers:",
    "body_size_limit:",
    "max_message_bytes:",
    "valid_status_codes:",
    "method: GET",
    "- ",
    ": ",
    "\n",
    "\n  ",
    "\n    ",
    "\n      ",
    "  ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!!str ",
    "!!int ",
    "? ",
    "---",
    "...",
    "#",
    "|",
    ">",
    "~",
    "null",
    "true",
    "5s",
    "0",
    "-1",
    "1e999",
    "1KiB",
    ".inf",
    "(",
    "${1}",
    "\t",
    "\r",
    "\u{feff}",
    "é",
    "\\",
    "%",
    "@",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(TOKENS).prop_map(str::to_string),
            1 => "[a-z0-9_]{1,6}",
            1 => "\\PC{1,4}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// One edit of a document (positions are taken modulo its length in chars).
#[derive(Debug, Clone)]
enum Edit {
    Delete {
        at: usize,
        len: usize,
    },
    Insert {
        at: usize,
        text: String,
    },
    DuplicateLine {
        line: usize,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    Indent {
        line: usize,
        by: usize,
    },
    Dedent {
        line: usize,
    },
    /// Replace what follows the first `: ` of a line.
    Value {
        line: usize,
        value: &'static str,
    },
}

/// Values for [`Edit::Value`]: of every YAML type, valid and not.
const VALUES: &[&str] = &[
    "5s",
    "0",
    "0s",
    "-1",
    "-5s",
    "1.5",
    "1e999",
    ".nan",
    "true",
    "false",
    "~",
    "''",
    "\"\"",
    "[]",
    "{}",
    "[a, b]",
    "{a: 1}",
    "x",
    "'('",
    "'[a-'",
    "ip4",
    "ip7",
    "1KiB",
    "10XB",
    "http",
    "tcp",
    "tls",
    "websocket",
    "icmp",
    "nope",
    "GET",
    "!!binary '***'",
    "!!binary aGk=",
    "'${1}'",
    "\"\\u0000\"",
    "'\r\n'",
    "18446744073709551616",
    "&x 1",
    "*x",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<usize>(), 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        2 => (
            any::<usize>(),
            prop_oneof![
                prop::sample::select(TOKENS).prop_map(str::to_string),
                "\\PC{1,3}"
            ]
        )
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        1 => any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        1 => (any::<usize>(), 1usize..4).prop_map(|(line, by)| Edit::Indent { line, by }),
        1 => any::<usize>().prop_map(|line| Edit::Dedent { line }),
        6 => (any::<usize>(), prop::sample::select(VALUES))
            .prop_map(|(line, value)| Edit::Value { line, value }),
    ]
}

fn apply(doc: &str, e: &Edit) -> String {
    let mut chars: Vec<char> = doc.chars().collect();
    let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match e {
        Edit::Delete { at, len } => {
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            chars.drain(at..end);
            return chars.into_iter().collect();
        }
        Edit::Insert { at, text } => {
            let at = at % (chars.len() + 1);
            chars.splice(at..at, text.chars());
            return chars.into_iter().collect();
        }
        Edit::DuplicateLine { line } => {
            if !lines.is_empty() {
                let l = lines[line % n].clone();
                lines.insert(line % n, l);
            }
        }
        Edit::SwapLines { a, b } => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        Edit::Indent { line, by } => {
            if !lines.is_empty() {
                lines[line % n].insert_str(0, &" ".repeat(*by));
            }
        }
        Edit::Dedent { line } => {
            if !lines.is_empty() {
                let l = &mut lines[line % n];
                if l.starts_with(' ') {
                    l.remove(0);
                }
            }
        }
        Edit::Value { line, value } => {
            if !lines.is_empty() {
                let l = &mut lines[line % n];
                if let Some(colon) = l.find(": ") {
                    l.replace_range(colon + 2.., value);
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// What a loaded config must satisfy, whatever the document was.
fn check_loaded(c: &Config) -> Result<(), TestCaseError> {
    for (name, m) in &c.modules {
        prop_assert_eq!(&m.name, name);
        prop_assert!(m.timeout.is_none_or(|t| t > Duration::ZERO));
    }
    // `/config` shows a document that loads again to the same modules.
    let again =
        load(&c.masked_yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{}", c.masked_yaml)))?;
    prop_assert_eq!(
        again.modules.keys().collect::<Vec<_>>(),
        c.modules.keys().collect::<Vec<_>>()
    );
    for (name, m) in &c.modules {
        let other = module(&again, name);
        prop_assert_eq!(other.timeout, m.timeout);
        prop_assert_eq!(other.prober.name(), m.prober.name());
    }
    Ok(())
}

/// A module timeout as written and the duration it means (None: zero, which
/// means "no module timeout").
fn timeout() -> impl Strategy<Value = (String, Option<Duration>)> {
    (
        0u64..100_000,
        prop::sample::select(
            &[
                ("ns", 1u64),
                ("us", 1_000),
                ("µs", 1_000),
                ("ms", 1_000_000),
                ("s", 1_000_000_000),
                ("m", 60_000_000_000),
                ("h", 3_600_000_000_000),
            ][..],
        ),
    )
        .prop_map(|(v, (unit, nanos))| {
            let d = Duration::from_nanos(v * nanos);
            (format!("{v}{unit}"), (!d.is_zero()).then_some(d))
        })
}

#[derive(Debug, Clone)]
struct GenModule {
    prober: &'static str,
    timeout: Option<(String, Option<Duration>)>,
    /// Write the (empty) block of the prober too.
    block: bool,
}

fn gen_module() -> impl Strategy<Value = GenModule> {
    (
        prop::sample::select(&["http", "tcp", "tls", "websocket"][..]),
        prop::option::of(timeout()),
        any::<bool>(),
    )
        .prop_map(|(prober, timeout, block)| GenModule {
            prober,
            timeout,
            block,
        })
}

/// Module names: anything, written as a YAML double-quoted scalar.
fn module_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_][a-z0-9_]{0,12}", "\\PC{0,12}", "(?s).{0,8}"]
}

fn document(modules: &BTreeMap<String, GenModule>) -> String {
    let mut s = String::from("modules:\n");
    for (name, m) in modules {
        let quoted = yaml_quote(name);
        s.push_str(&format!("  {quoted}:\n    prober: {}\n", m.prober));
        if let Some((text, _)) = &m.timeout {
            s.push_str(&format!("    timeout: {text}\n"));
        }
        if m.block {
            s.push_str(&format!("    {}: {{}}\n", m.prober));
        }
    }
    s
}

#[test]
fn the_base_document_loads() {
    let c = load(VALID).expect("VALID loads");
    assert_eq!(c.modules.len(), 6);
    check_loaded(&c).expect("masked config reloads");
}

proptest! {
    #![proptest_config(crate::net::proptest_config(256))]

    #[test]
    fn arbitrary_text_loads_or_is_an_error(s in "\\PC{0,200}") {
        if let Ok(c) = load(&s) {
            check_loaded(&c)?;
        }
    }

    #[test]
    fn yamlish_documents_load_or_are_an_error(s in yamlish()) {
        if let Ok(c) = load(&s) {
            check_loaded(&c)?;
        }
    }
}

proptest! {
    #![proptest_config(crate::net::proptest_config(128))]

    #[test]
    fn mutated_configs_load_or_are_an_error(edits in prop::collection::vec(edit(), 1..4)) {
        let doc = edits.iter().fold(VALID.to_string(), |d, e| apply(&d, e));
        if let Ok(c) = load(&doc) {
            check_loaded(&c)?;
        }
    }

    #[test]
    fn generated_modules_load_as_written(
        modules in prop::collection::btree_map(module_name(), gen_module(), 1..5)
    ) {
        let doc = document(&modules);
        let c = load(&doc).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert_eq!(c.modules.len(), modules.len());
        for (name, m) in &modules {
            let got = c.modules.get(name);
            prop_assert!(got.is_some(), "module {:?} missing from\n{}", name, doc);
            let got = got.expect("checked above");
            prop_assert_eq!(got.prober.name(), m.prober);
            prop_assert_eq!(got.timeout, m.timeout.as_ref().and_then(|(_, d)| *d));
        }
        check_loaded(&c)?;
    }

    #[test]
    fn an_unknown_prober_is_an_error_naming_the_module(
        name in "[a-z][a-z0-9_]{0,8}",
        prober in "[a-z]{1,10}",
    ) {
        prop_assume!(!ModuleFile::PROBERS.contains(&prober.as_str()));
        let e = load_err(&format!("modules:\n  {name}:\n    prober: {prober}\n"));
        prop_assert!(e.contains(&format!("module {name:?}")), "{}", e);
        prop_assert!(e.contains(&format!("unknown prober {prober:?}")), "{}", e);
    }
}
