//! After the upgrade: the `query_response` dialog, the ping, and a clean
//! close, over tungstenite.

use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

use super::config::{WebSocketSettings, WsStep};
use super::handshake::Ws;
use super::{CLOSE_CODE, FAILED_DUE_TO_REGEX, PING_RTT, fail};
use crate::prober::ProbeContext;
use crate::prober::reason::{FailureReason, ProbeFailure, WsActivity, websocket_reason};

fn record_close(cx: &ProbeContext<'_>, frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(f) => {
            let code = u16::from(f.code);
            cx.metrics.set(&CLOSE_CODE, f64::from(code));
            format!("close code {code} {:?}", f.reason.as_str())
        }
        None => "close frame without code".into(),
    }
}

/// The dialog: query_response steps in order, then the ping.
pub async fn exchange(
    cx: &ProbeContext<'_>,
    s: &WebSocketSettings,
    ws: &mut Ws,
) -> Result<(), ProbeFailure> {
    let mut last_match: Option<(&regex::bytes::Regex, Vec<u8>)> = None;
    for (i, step) in s.query_response.iter().enumerate() {
        match step {
            WsStep::SendText {
                text,
                expand_captures,
            } => {
                let text = match (&last_match, expand_captures) {
                    (Some((re, message)), true) => expand(re, message, text),
                    _ => text.clone(),
                };
                cx.log
                    .debug("Sending text message", &[("step", &i), ("message", &text)]);
                send(ws, Message::text(text)).await?;
            }
            WsStep::SendBinary(data) => {
                cx.log.debug(
                    "Sending binary message",
                    &[("step", &i), ("bytes", &data.len())],
                );
                send(ws, Message::binary(data.clone())).await?;
            }
            WsStep::Expect(re) => {
                // Set before waiting: the deadline may cut the wait, and
                // then this line is what the probe reports.
                cx.set_deadline_reason(FailureReason::ExpectFailed);
                cx.metrics.set(&FAILED_DUE_TO_REGEX, 1.0);
                let message = expect(cx, ws, re).await?;
                cx.metrics.set(&FAILED_DUE_TO_REGEX, 0.0);
                cx.set_deadline_reason(FailureReason::Timeout);
                last_match = Some((re, message));
            }
        }
    }
    if s.ping {
        ping(cx, ws).await?;
    }
    Ok(())
}

/// `${1}` / `$name` in `template` from the captures of `re` in `message`.
fn expand(re: &regex::bytes::Regex, message: &[u8], template: &str) -> String {
    let mut out = Vec::new();
    match re.captures(message) {
        Some(c) => c.expand(template.as_bytes(), &mut out),
        None => out.extend_from_slice(template.as_bytes()),
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn send(ws: &mut Ws, msg: Message) -> Result<(), ProbeFailure> {
    ws.send(msg).await.map_err(|e| {
        fail(
            websocket_reason(Some(&e), WsActivity::Talking),
            format!("could not send a message: the connection is gone ({e})"),
        )
    })
}

/// Scan incoming data messages until one matches; returns that message.
async fn expect(
    cx: &ProbeContext<'_>,
    ws: &mut Ws,
    re: &regex::bytes::Regex,
) -> Result<Vec<u8>, ProbeFailure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if re.is_match(t.as_bytes()) {
                    cx.log.debug("Message matched", &[("regexp", &re.as_str())]);
                    return Ok(t.as_bytes().to_vec());
                }
                cx.log
                    .debug("Skipping message", &[("message", &t.as_str())]);
            }
            Some(Ok(Message::Binary(b))) => {
                if re.is_match(&b) {
                    cx.log
                        .debug("Binary message matched", &[("regexp", &re.as_str())]);
                    return Ok(b.to_vec());
                }
                cx.log
                    .debug("Skipping binary message", &[("bytes", &b.len())]);
            }
            Some(Ok(Message::Close(frame))) => {
                let what = record_close(cx, &frame);
                return Err(fail(
                    websocket_reason(None, WsActivity::Expecting),
                    format!(
                        "server closed the WebSocket ({what}) before a message matched {:?}",
                        re.as_str()
                    ),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(fail(
                    websocket_reason(Some(&e), WsActivity::Expecting),
                    format!(
                        "stream ended before a message matched {:?}: {e}",
                        re.as_str()
                    ),
                ));
            }
            None => {
                return Err(fail(
                    websocket_reason(None, WsActivity::Expecting),
                    format!("stream ended before a message matched {:?}", re.as_str()),
                ));
            }
        }
    }
}

/// Send a ping and wait for its pong; data messages in between are skipped.
async fn ping(cx: &ProbeContext<'_>, ws: &mut Ws) -> Result<(), ProbeFailure> {
    let payload = Bytes::from(rand::random::<u64>().to_be_bytes().to_vec());
    let start = Instant::now();
    send(ws, Message::Ping(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(p))) if p == payload => {
                let rtt = start.elapsed().as_secs_f64();
                cx.metrics.set(&PING_RTT, rtt);
                cx.log.debug("Received pong", &[("rtt_seconds", &rtt)]);
                return Ok(());
            }
            Some(Ok(Message::Close(frame))) => {
                let what = record_close(cx, &frame);
                return Err(fail(
                    websocket_reason(None, WsActivity::Talking),
                    format!("server closed the WebSocket ({what}) before answering the ping"),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(fail(
                    websocket_reason(Some(&e), WsActivity::Talking),
                    format!("connection lost before the pong: {e}"),
                ));
            }
            None => {
                return Err(fail(
                    websocket_reason(None, WsActivity::Talking),
                    "connection closed before the pong",
                ));
            }
        }
    }
}

/// Close with 1000 and wait (briefly, inside the deadline) for the
/// server's close frame, recording its code.
pub async fn close(cx: &ProbeContext<'_>, ws: &mut Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let remaining = cx
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    let wait = remaining
        .mul_f64(0.5)
        .min(std::time::Duration::from_secs(1));
    let _ = tokio::time::timeout(wait, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => {
                    record_close(cx, &frame);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::prober::registry::test_support::{self, Piece, render};

    /// Captures `word=digits`: 1 (`word`) the letters, 2 (`num`) the
    /// digits, 3 never takes part.
    const CAPTURING: &str = r"^(?P<word>[a-z]*)=(?P<num>[0-9]*)(\x00)?$";

    /// Template pieces for the CAPTURING regex above.
    fn piece() -> impl Strategy<Value = Piece> {
        test_support::piece("[^$]{1,6}", 5, &["word", "num", "nope"])
    }

    /// The expansion restated from what the message was made of.
    fn expected(word: &str, num: &str, pieces: &[Piece]) -> String {
        let whole = format!("{word}={num}");
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Group(0) => whole.as_str(),
                Piece::Group(1) | Piece::Named("word") => word,
                Piece::Group(2) | Piece::Named("num") => num,
                Piece::Group(_) | Piece::Named(_) => "",
                Piece::Dollar => "$",
            })
            .collect()
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn expansion_inserts_exactly_the_captured_text(
            word in "[a-z]{0,6}",
            num in "[0-9]{0,6}",
            pieces in prop::collection::vec(piece(), 0..8),
        ) {
            let re = regex::bytes::Regex::new(CAPTURING).expect("valid");
            let message = format!("{word}={num}");
            prop_assert_eq!(
                expand(&re, message.as_bytes(), &render(&pieces)),
                expected(&word, &num, &pieces)
            );
        }

        #[test]
        fn a_template_without_dollar_is_unchanged(
            message in "[a-z0-9=]{0,10}",
            template in "[^$]{0,20}",
        ) {
            let re = regex::bytes::Regex::new(CAPTURING).expect("valid");
            prop_assert_eq!(expand(&re, message.as_bytes(), &template), template);
        }

        #[test]
        fn without_a_match_the_template_is_unchanged(
            message in "[a-z0-9]{0,10}",
            pieces in prop::collection::vec(piece(), 0..8),
        ) {
            // No `=`: the regex cannot match, and the template is sent as
            // written, `$` and all.
            let re = regex::bytes::Regex::new(CAPTURING).expect("valid");
            let template = render(&pieces);
            prop_assert_eq!(expand(&re, message.as_bytes(), &template), template);
        }

        #[test]
        fn binary_captures_are_shown_lossily(
            bytes in prop::collection::vec(any::<u8>(), 0..12),
        ) {
            // A binary message may capture bytes that are not UTF-8.
            let re = regex::bytes::Regex::new(r"(?s-u)^(.*)$").expect("valid");
            prop_assert_eq!(
                expand(&re, &bytes, "<${1}>"),
                format!("<{}>", String::from_utf8_lossy(&bytes))
            );
        }
    }
}
