//! End to end: real nginx in front of an in-process SSE backend that sends
//! one event, then nothing for 3 s.
//!
//! | location              | nginx does                                   | probe says |
//! |-----------------------|----------------------------------------------|------------|
//! | `/stream`             | `proxy_buffering off`                        | success, 1 event |
//! | `/buffered`           | `proxy_buffering on` (nginx's default): the  | `timeout`, status 0 |
//! |                       | event is held, and so is the head (nginx     |            |
//! |                       | writes nothing before `postpone_output`,     |            |
//! |                       | 1460 bytes)                                  |            |
//! | `/buffered-head-sent` | `proxy_buffering on`, `postpone_output 0`:   | `expect_failed`, 0 events, status 200 |
//! |                       | the head is written, the event held          |            |
//!
//! So a buffering nginx in its default config shows as `timeout` with
//! `probe_sse_status_code 0`, not as SPEC 11.2's `expect_failed` with
//! `probe_sse_events_received 0`: that needs a proxy that forwards the head
//! at once.

use std::path::Path;
use std::time::Duration;

use crate::common::nginx::{Nginx, NginxConfig};
use crate::common::probe::{Outcome, run_in};
use crate::sse_prober::{Step, hold, send, sse_server};

const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

const CONFIG: &str = "modules:
  sse:
    prober: sse
    sse:
      preferred_ip_protocol: ip4
      expect: first
";

async fn probe(nginx: &Nginx, path: &str) -> Outcome {
    let target = nginx.url("http", 0, path);
    run_in(Path::new("/"), CONFIG, "sse", &target, None, PROBE_TIMEOUT).await
}

#[tokio::test]
async fn buffering_proxy_holds_the_events_back() {
    let (backend, _) = sse_server(vec![
        send("data: first\n\n"),
        Step::Sleep(Duration::from_secs(3)),
        send("data: second\n\n"),
        hold(),
    ])
    .await;
    let upstream = backend.addr();
    let mut conf = NginxConfig::new();
    conf.server(&format!(
        r#"
    server {{
        listen 127.0.0.1:@PORT0@;
        location /stream {{
            proxy_pass http://{upstream}/events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 30s;
        }}
        location /buffered {{
            proxy_pass http://{upstream}/events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_read_timeout 30s;
        }}
        location /buffered-head-sent {{
            proxy_pass http://{upstream}/events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            postpone_output 0;
            proxy_read_timeout 30s;
        }}
    }}
"#
    ));
    let nginx = conf.start();

    let o = probe(&nginx, "/stream").await;
    if !o.success {
        panic!(
            "unbuffered: {:?}\n{}\n{}\n{}",
            o.reason,
            o.log,
            o.text,
            nginx.logs()
        );
    }
    assert_eq!(o.value("probe_sse_events_received", &[]), Some(1.0));
    eprintln!(
        "nginx proxy_buffering off: success after {:?}, first event {:?}s",
        o.elapsed,
        o.value("probe_sse_first_event_seconds", &[])
    );

    // nginx's defaults: the event sits in the proxy buffer, and the
    // response head sits in the output buffer with it (postpone_output
    // 1460: nothing is written before 1460 bytes or a flush) — the head
    // never arrives, so the deadline is `timeout`, status 0.
    let o = probe(&nginx, "/buffered").await;
    if o.reason.as_deref() != Some("timeout") {
        panic!(
            "buffered: {:?}\n{}\n{}\n{}",
            o.reason,
            o.log,
            o.text,
            nginx.logs()
        );
    }
    o.assert_reason("timeout");
    assert_eq!(o.value("probe_sse_status_code", &[]), Some(0.0));
    assert_eq!(o.value("probe_sse_events_received", &[]), Some(0.0));
    assert_deadline(&o);
    eprintln!(
        "nginx proxy_buffering on (defaults): {:?} after {:?}",
        o.reason, o.elapsed
    );

    // Buffering on but the head written at once (postpone_output 0): the
    // stream is up, the events are held — `expect_failed`, 0 events.
    let o = probe(&nginx, "/buffered-head-sent").await;
    if o.reason.as_deref() != Some("expect_failed") {
        panic!(
            "buffered, head sent: {:?}\n{}\n{}\n{}",
            o.reason,
            o.log,
            o.text,
            nginx.logs()
        );
    }
    o.assert_reason("expect_failed");
    assert_eq!(o.value("probe_sse_events_received", &[]), Some(0.0));
    assert_eq!(o.value("probe_sse_status_code", &[]), Some(200.0));
    assert!(
        !o.metrics.has("probe_sse_first_event_seconds"),
        "{}",
        o.text
    );
    assert_deadline(&o);
    eprintln!(
        "nginx proxy_buffering on, postpone_output 0: {:?} after {:?}",
        o.reason, o.elapsed
    );
}

/// The probe ended at its deadline, within 300 ms.
fn assert_deadline(o: &Outcome) {
    assert!(
        o.elapsed >= PROBE_TIMEOUT && o.elapsed < PROBE_TIMEOUT + Duration::from_millis(300),
        "{:?}",
        o.elapsed
    );
}
