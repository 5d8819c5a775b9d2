//! The http prober's `oauth2` (client credentials), in-process: an
//! in-process token endpoint and target on 127.0.0.1 (ports from port 0),
//! what each of them sees, the token cache, and every way the token fetch
//! can fail, each with its reason from the one table.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;

use crate::common::closed_addr;
use crate::common::exporter::Exporter;
use crate::common::http_server::{Body, TestServer, Tls, redirect, silent_server};
use crate::common::pki::Pki;
use crate::common::probe::{Outcome, load_config, run_loaded};
use crate::common::proxy::Proxy;
use crate::common::recording::{Log, Seen, ok, slow_recording_server};
use handshake_exporter::prober::{Config, load_str};

const TIMEOUT: Duration = Duration::from_secs(5);
const SECRET: &str = "s3cr:et-SECRET";
const TOKEN_JSON: &str = r#"{"access_token":"tok-123","token_type":"bearer","expires_in":3600}"#;

/// A server recording every request in `log`; `respond` answers `delay`
/// after the request is recorded.
fn recording(
    log: &Log,
    delay: Duration,
    respond: impl Fn(&Seen) -> Response<Body> + Send + Sync + 'static,
) -> TestServer {
    slow_recording_server(None, log, delay, respond)
}

fn json(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// A config with one http module `m` (ip4) whose `http:` block is `http`
/// (lines at column 0), after the top-level `top` lines.
fn config_yaml(top: &str, http: &str) -> String {
    let indented: String = format!("preferred_ip_protocol: ip4\n{http}")
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    format!("{top}modules:\n  m:\n    prober: http\n    http:\n{indented}")
}

/// `oauth2:` with client credentials for `token_url`, plus `extra` lines
/// inside the block.
fn oauth2(token_url: &str, extra: &str) -> String {
    let mut s = format!(
        "oauth2:\n  client_id: my id\n  client_secret: '{SECRET}'\n  token_url: {token_url}\n"
    );
    for line in extra.lines() {
        s.push_str(&format!("  {line}\n"));
    }
    s
}

fn load(http: &str) -> Config {
    load_config(Path::new("/"), &config_yaml("", http))
}

async fn probe(config: &Config, target: &str) -> Outcome {
    run_loaded(config, "m", target, None, TIMEOUT).await
}

fn assert_no_secret(o: &Outcome) {
    for leak in ["SECRET", "tok-123"] {
        assert!(!o.log.contains(leak), "{leak} in the log:\n{}", o.log);
        assert!(!o.text.contains(leak), "{leak} in the metrics:\n{}", o.text);
    }
}

// ---------------------------------------------------------------------------
// The token request and the probe's request
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_token_is_fetched_and_sent_to_the_target() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(
        &token_server.url("/oauth/token?tenant=t1"),
        "scopes: [read, 'write all']\nendpoint_params:\n  audience: https://api.example\n  resource: r",
    ));
    let o = probe(&config, &target.url("/ok")).await;
    o.assert_success();
    assert_no_secret(&o);
    assert_eq!(
        hits.at("/ok").header("authorization").as_deref(),
        Some("Bearer tok-123")
    );

    let fetches = tokens.all();
    assert_eq!(fetches.len(), 1, "{fetches:#?}");
    let t = &fetches[0];
    assert_eq!(t.method, Method::POST);
    assert_eq!(t.path, "/oauth/token?tenant=t1");
    assert_eq!(
        t.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    // The client credentials in basic auth, query-escaped first as Go does.
    let basic = base64::engine::general_purpose::STANDARD.encode("my+id:s3cr%3Aet-SECRET");
    assert_eq!(t.header("authorization"), Some(format!("Basic {basic}")));
    assert!(
        t.header("user-agent")
            .is_some_and(|ua| ua.starts_with("handshake_exporter/")),
        "{t:#?}"
    );
    // Keys sorted, as Go's url.Values.Encode writes them.
    assert_eq!(
        t.body,
        "audience=https%3A%2F%2Fapi.example&grant_type=client_credentials&resource=r&scope=read+write+all"
    );
    assert!(o.log.contains("Fetching oauth2 token"), "{}", o.log);
    assert!(o.log.contains("Fetched oauth2 token"), "{}", o.log);
}

#[tokio::test]
async fn token_type_and_form_answers_as_golang_reads_them() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"access_token=tok-123&token_type=DPoP",
            )))
            .expect("response")
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(&token_server.url("/t"), ""));
    probe(&config, &target.url("/")).await.assert_success();
    assert_eq!(
        hits.all()[0].header("authorization").as_deref(),
        Some("DPoP tok-123")
    );
}

#[tokio::test]
async fn an_https_token_endpoint_uses_the_blocks_own_tls_config() {
    let pki = Pki::new();
    let tokens = Log::default();
    let token_server = slow_recording_server(
        Some(Tls::new(&pki.localhost_leaf())),
        &tokens,
        Duration::ZERO,
        |_| json(StatusCode::OK, TOKEN_JSON),
    );
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let ca = pki.ca_file();
    // Trusted by the oauth2 block's tls_config: fine.
    let config = load(&oauth2(
        &token_server.url("/t"),
        &format!("tls_config:\n  ca_file: {}", ca.display()),
    ));
    let o = probe(&config, &target.url("/")).await;
    o.assert_success();
    assert_eq!(tokens.count(), 1);
    // The token endpoint's certificate is not the target's: no TLS
    // metrics for a plain http target.
    assert!(
        !o.metrics.has("probe_ssl_earliest_cert_expiry"),
        "{}",
        o.text
    );

    // The module's own tls_config does not apply to the token endpoint.
    let config = load(&format!(
        "{}tls_config:\n  ca_file: {}\n",
        oauth2(&token_server.url("/t"), ""),
        ca.display()
    ));
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("tls_cert_untrusted");
    assert_no_secret(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_has_its_own_proxy_keys() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let (module_proxy, token_proxy) = (Proxy::start().await, Proxy::start().await);
    let token_url = token_server.url("/t");
    let yaml = format!(
        "proxy_url: {}\n{}",
        module_proxy.url(),
        oauth2(
            &token_url,
            &format!("proxy_url: http://u:p@127.0.0.1:{}", token_proxy.port())
        )
    );
    let o = probe(&load(&yaml), &target.url("/")).await;
    o.assert_success();
    // Absolute form, with the block's proxy credentials.
    token_proxy.assert_one_head_as_u_p(&format!("POST {token_url} HTTP/1.1"));
    assert_eq!(tokens.count(), 1);
    // The module's proxy carried the probe only.
    let heads = module_proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("GET "), "{heads:?}");
    assert_eq!(
        hits.all()[0].header("authorization").as_deref(),
        Some("Bearer tok-123")
    );

    // An https token endpoint is tunnelled with the block's
    // proxy_connect_header.
    let pki = Pki::new();
    let tls_tokens = Log::default();
    let tls_server = slow_recording_server(
        Some(Tls::new(&pki.localhost_leaf())),
        &tls_tokens,
        Duration::ZERO,
        |_| json(StatusCode::OK, TOKEN_JSON),
    );
    let yaml = oauth2(
        &tls_server.url("/t"),
        &format!(
            "proxy_url: {}\nproxy_connect_header:\n  X-Tunnel: [t-SECRET]\ntls_config:\n  ca_file: {}",
            token_proxy.url(),
            pki.ca_file().display()
        ),
    );
    let o = probe(&load(&yaml), &target.url("/")).await;
    o.assert_success();
    assert_no_secret(&o);
    let heads = token_proxy.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[1].starts_with(&format!(
            "CONNECT localhost:{} HTTP/1.1\r\n",
            tls_server.port()
        )),
        "{heads:?}"
    );
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains("x-tunnel: t-secret\r\n"),
        "{heads:?}"
    );
    assert_eq!(tls_tokens.count(), 1);
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_token_is_cached_per_module_until_shortly_before_it_expires() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::from_millis(50), |s| {
        // `/short` hands out tokens that expire within the 10 s margin.
        if s.path == "/short" {
            json(
                StatusCode::OK,
                r#"{"access_token":"tok-short","expires_in":5}"#,
            )
        } else {
            json(StatusCode::OK, TOKEN_JSON)
        }
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);

    let config = load(&oauth2(&token_server.url("/long"), ""));
    let first = probe(&config, &target.url("/")).await;
    first.assert_success();
    let second = probe(&config, &target.url("/")).await;
    second.assert_success();
    assert_eq!(tokens.count(), 1, "one fetch for two probes");
    assert!(
        second.log.contains("Using cached oauth2 token"),
        "{}",
        second.log
    );
    assert!(
        hits.all()
            .iter()
            .all(|s| s.header("authorization").as_deref() == Some("Bearer tok-123"))
    );
    let duration = |o: &Outcome| o.value("probe_duration_seconds", &[]).expect("duration");
    eprintln!(
        "oauth2 probe: uncached {:.4} s (token endpoint answers after 50 ms), cached {:.4} s",
        duration(&first),
        duration(&second)
    );
    assert!(
        duration(&second) < duration(&first),
        "{} {}",
        duration(&second),
        duration(&first)
    );

    // The same module loaded again (a reload) fetches its own token.
    let reloaded = load(&oauth2(&token_server.url("/long"), ""));
    probe(&reloaded, &target.url("/")).await.assert_success();
    assert_eq!(tokens.count(), 2);

    // expires_in 5 is within golang's 10 s early expiry: every probe
    // fetches.
    let config = load(&oauth2(&token_server.url("/short"), ""));
    for _ in 0..2 {
        probe(&config, &target.url("/")).await.assert_success();
    }
    assert_eq!(tokens.all_at("/short").len(), 2);
}

#[tokio::test]
async fn a_token_without_expires_in_is_reused() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, r#"{"access_token":"tok-123"}"#)
    });
    let target = recording(&Log::default(), Duration::ZERO, ok);
    let config = load(&oauth2(&token_server.url("/t"), ""));
    for _ in 0..3 {
        probe(&config, &target.url("/")).await.assert_success();
    }
    assert_eq!(tokens.count(), 1);
}

#[tokio::test]
async fn concurrent_probes_share_one_fetch() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::from_millis(300), |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(&token_server.url("/t"), ""));
    let url = target.url("/");
    let (a, b, c, d) = tokio::join!(
        probe(&config, &url),
        probe(&config, &url),
        probe(&config, &url),
        probe(&config, &url)
    );
    for o in [a, b, c, d] {
        o.assert_success();
    }
    assert_eq!(tokens.count(), 1);
    assert_eq!(hits.count(), 4);
}

#[tokio::test]
async fn client_secret_file_is_read_per_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "first-SECRET\n").expect("write");
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let target = recording(&Log::default(), Duration::ZERO, ok);
    let yaml = format!(
        "oauth2:\n  client_id: id\n  client_secret_file: secret\n  token_url: {}\n",
        token_server.url("/t")
    );
    let config = load_config(dir.path(), &config_yaml("", &yaml));
    let basic = |secret: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("id:{secret}"))
        ))
    };
    let o = probe(&config, &target.url("/")).await;
    o.assert_success();
    assert_no_secret(&o);
    assert_eq!(
        tokens.all()[0].header("authorization"),
        basic("first-SECRET")
    );
    // Unchanged: the cached token.
    probe(&config, &target.url("/")).await.assert_success();
    assert_eq!(tokens.count(), 1);
    // Rotated: a new token with the new secret, as prometheus/common does.
    std::fs::write(&secret_file, "second-SECRET").expect("write");
    probe(&config, &target.url("/")).await.assert_success();
    assert_eq!(tokens.count(), 2);
    assert_eq!(
        tokens.all()[1].header("authorization"),
        basic("second-SECRET")
    );
    // Gone: the probe fails without reaching anything, naming the file.
    std::fs::remove_file(&secret_file).expect("rm");
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("invalid_target");
    assert!(o.log.contains("secret"), "{}", o.log);
    assert_eq!(tokens.count(), 2);
}

// ---------------------------------------------------------------------------
// Failures of the token endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_token_endpoint_refusing_the_client_is_http_status() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client","error_description":"bad s3cr:et-SECRET"}"#,
        )
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(&token_server.url("/t"), ""));
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("http_status");
    assert_no_secret(&o);
    assert!(o.log.contains("answered 401 (invalid_client)"), "{}", o.log);
    assert_eq!(hits.count(), 0, "the target is not probed without a token");
    // Basic auth first, then (golang's auto-detection) the credentials in
    // the form.
    let fetches = tokens.all();
    assert_eq!(fetches.len(), 2, "{fetches:#?}");
    assert!(fetches[0].header("authorization").is_some());
    assert_eq!(fetches[1].header("authorization"), None);
    assert_eq!(
        fetches[1].body,
        "client_id=my+id&client_secret=s3cr%3Aet-SECRET&grant_type=client_credentials"
    );
}

#[tokio::test]
async fn credentials_in_the_form_are_remembered() {
    let tokens = Log::default();
    // Accepts the credentials in the form only, with tokens that are due
    // at once (expires_in within the 10 s margin).
    let token_server = recording(&tokens, Duration::ZERO, |s| {
        if s.body_text().contains("client_secret=") {
            json(
                StatusCode::OK,
                r#"{"access_token":"tok-123","expires_in":1}"#,
            )
        } else {
            json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#)
        }
    });
    let target = recording(&Log::default(), Duration::ZERO, ok);
    let config = load(&oauth2(
        &token_server.url("/t"),
        "endpoint_params:\n  grant_type: custom",
    ));
    probe(&config, &target.url("/")).await.assert_success();
    assert_eq!(tokens.count(), 2);
    // endpoint_params may override grant_type (golang allows it).
    assert!(
        tokens.all()[1].body_text().contains("grant_type=custom"),
        "{:?}",
        tokens.all()
    );
    // The next fetch of the module goes straight to the form.
    probe(&config, &target.url("/")).await.assert_success();
    let fetches = tokens.all();
    assert_eq!(fetches.len(), 3, "{fetches:#?}");
    assert!(fetches[2].body_text().contains("client_secret="));
}

#[tokio::test]
async fn a_token_answer_without_an_access_token_is_http_status() {
    for (name, answer) in [
        ("no access_token", r#"{"token_type":"bearer"}"#.to_string()),
        ("not json", "<html>hello</html>".to_string()),
        (
            "too large",
            format!(
                r#"{{"access_token":"tok-123","pad":"{}"}}"#,
                "x".repeat(100 << 10)
            ),
        ),
    ] {
        let token_server = recording(&Log::default(), Duration::ZERO, move |_| {
            json(StatusCode::OK, &answer)
        });
        let hits = Log::default();
        let target = recording(&hits, Duration::ZERO, ok);
        let config = load(&oauth2(&token_server.url("/t"), ""));
        let o = probe(&config, &target.url("/")).await;
        o.assert_reason("http_status");
        assert!(o.log.contains("answered 200"), "{name}: {}", o.log);
        assert_no_secret(&o);
        assert_eq!(hits.count(), 0, "{name}");
    }
}

#[tokio::test]
async fn a_refused_token_endpoint_is_connect_refused() {
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(&format!("http://{}/token", closed_addr()), ""));
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("connect_refused");
    assert_no_secret(&o);
    assert!(o.log.contains("Error fetching oauth2 token"), "{}", o.log);
    assert_eq!(hits.count(), 0);
}

#[tokio::test]
async fn a_silent_token_endpoint_times_out_within_the_deadline() {
    let silent = silent_server();
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    let config = load(&oauth2(&silent.url("/token"), ""));
    let start = Instant::now();
    let o = run_loaded(&config, "m", &target.url("/"), None, Duration::from_secs(1)).await;
    let elapsed = start.elapsed();
    o.assert_reason("timeout");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "took {elapsed:?}");
    assert_eq!(silent.connections(), 1);
    assert_eq!(hits.count(), 0);
}

#[tokio::test]
async fn a_forbidden_token_endpoint_is_target_forbidden() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let hits = Log::default();
    let target = recording(&hits, Duration::ZERO, ok);
    // The target is 127.0.0.1; the token endpoint, by name, is denied.
    let yaml = config_yaml(
        "target_policy:\n  deny: [localhost]\n",
        &oauth2(&token_server.url_with_host("localhost", "/t"), ""),
    );
    let config = load_config(Path::new("/"), &yaml);
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(token_server.connections(), 0);
    assert_eq!(hits.count(), 0);

    // A denied address is refused after resolution, before dialling.
    let yaml = config_yaml(
        "target_policy:\n  deny: [127.0.0.2/32]\n",
        &oauth2(&format!("http://127.0.0.2:{}/t", token_server.port()), ""),
    );
    let config = load_config(Path::new("/"), &yaml);
    let o = probe(&config, &target.url("/")).await;
    o.assert_reason("target_forbidden");
    assert_eq!(token_server.connections(), 0);
}

// ---------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_redirect_to_another_host_gets_no_token() {
    let tokens = Log::default();
    let token_server = recording(&tokens, Duration::ZERO, |_| {
        json(StatusCode::OK, TOKEN_JSON)
    });
    let hits = Log::default();
    let other = recording(&hits, Duration::ZERO, ok);
    let elsewhere = other.url_with_host("localhost", "/elsewhere");
    let same_host = other.url("/same");
    let origin = recording(&hits, Duration::ZERO, move |s| match s.path.as_str() {
        "/to-other" => redirect(StatusCode::FOUND, &elsewhere),
        _ => redirect(StatusCode::FOUND, &same_host),
    });
    let config = load(&oauth2(&token_server.url("/t"), ""));

    let o = probe(&config, &origin.url("/to-other")).await;
    o.assert_success();
    assert_no_secret(&o);
    assert_eq!(
        hits.at("/to-other").header("authorization").as_deref(),
        Some("Bearer tok-123")
    );
    assert_eq!(hits.at("/elsewhere").header("authorization"), None);
    assert!(
        o.log.contains("not sending the module's credentials"),
        "{}",
        o.log
    );

    // The same host (another port) keeps it; one token for both hops.
    let o = probe(&config, &origin.url("/to-same")).await;
    o.assert_success();
    assert_eq!(
        hits.at("/same").header("authorization").as_deref(),
        Some("Bearer tok-123")
    );
    assert_eq!(tokens.count(), 1);
}

// ---------------------------------------------------------------------------
// Config: load errors and /config
// ---------------------------------------------------------------------------

#[test]
fn invalid_oauth2_blocks_are_load_errors_with_prometheus_commons_words() {
    for (http, message) in [
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\nbearer_token: b\n",
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        ),
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\nbasic_auth:\n  username: u\n",
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ),
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\nauthorization:\n  credentials: c\n",
            "at most one of basic_auth, oauth2 & authorization must be configured",
        ),
        (
            "oauth2:\n  token_url: http://127.0.0.1/t\n",
            "oauth2 client_id must be configured",
        ),
        (
            "oauth2:\n  client_id: id\n",
            "oauth2 token_url must be configured",
        ),
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\n  client_secret: s-SECRET\n  client_secret_file: f\n",
            "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured",
        ),
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\n  grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer\n",
            "is not supported by handshake_exporter",
        ),
        (
            "oauth2:\n  client_id: id\n  token_url: http://127.0.0.1/t\n  client_scret: x\n",
            "client_scret",
        ),
    ] {
        let err = load_str(&config_yaml("", http), Path::new("/"))
            .err()
            .unwrap_or_else(|| panic!("loaded: {http}"))
            .to_string();
        assert!(err.contains(message), "{http}\n{err}");
        // A key nobody knows is a parse error naming its line; the rest
        // name the module.
        let place = if message == "client_scret" {
            "line 9"
        } else {
            "module \"m\""
        };
        assert!(err.contains(place), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}

#[tokio::test]
async fn config_endpoint_masks_the_client_secret() {
    let yaml = config_yaml(
        "",
        "oauth2:\n  client_id: my-client\n  client_secret: cs-SECRET\n  token_url: 'https://user:pw-SECRET@auth.example/token'\n  scopes: [a]\n",
    );
    let exporter = Exporter::start(&yaml).await;
    let r = exporter.get("/config").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("client_secret: <secret>"), "{}", r.body);
    assert!(r.body.contains("client_id: my-client"), "{}", r.body);
    assert!(r.body.contains("user:xxxxx@auth.example"), "{}", r.body);
    assert!(!r.body.contains("SECRET"), "{}", r.body);
}
