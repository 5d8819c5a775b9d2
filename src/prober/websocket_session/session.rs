//! The session registry and each session's task.
//!
//! A session is keyed by (module name, target). Its task connects (through
//! the connector with the module's target policy, so every reconnect is
//! checked again), runs the websocket dialog, then holds the connection:
//! pings every `ping_interval`, notes the time of every message and pong,
//! closes on `max_silence`, records how each connection ended, and
//! reconnects after a backoff doubling from `reconnect_min` to
//! `reconnect_max` (reset by a successful handshake). A probe only reads
//! the session's state. An idle session holds its socket, a 4 KiB read
//! buffer, and this small state.
//!
//! A session ends when it expires (no probe asked for it for
//! `expire_after`), when a reload changed or removed its module, or at
//! shutdown: it sends a close frame (1001 going away) and drops its
//! connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{
    CONNECTED, CONNECTS, DISCONNECTS, LAST_CLOSE_CODE, LAST_CONNECTION, LAST_MESSAGE_AGE, PING_RTT,
    SessionSettings, SessionTimes, UPTIME,
};
use crate::prober::log::{LogFormat, ProbeLog};
use crate::prober::metrics::ProbeMetrics;
use crate::prober::reason::{FailureReason, ProbeFailure, session_end_reason};
use crate::prober::registry::Prober;
use crate::prober::websocket::handshake::Ws;
use crate::prober::websocket::{self, WebSocketSettings, dialog};
use crate::prober::{Config, Module, ProbeContext, ProbeLimits, ProberSettings};

/// `--session.max` when not set.
pub const DEFAULT_MAX_SESSIONS: usize = 1000;

type Key = (String, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All sessions of one server.
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    max: AtomicUsize,
    map: Mutex<HashMap<Key, Arc<Session>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SESSIONS)
    }
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max: AtomicUsize::new(max),
                map: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// `--session.max`: beyond it a new session is refused (existing ones
    /// keep running and reporting).
    pub fn set_max(&self, max: usize) {
        self.inner.max.store(max, Ordering::Relaxed);
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        lock(&self.inner.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// After a reload: close the sessions whose module is gone or changed
    /// (its settings as shown, its timeout or its target policy, the top
    /// level's included). The others keep running with the module they
    /// started with, which is the same.
    pub fn retain_config(&self, config: &Config) {
        let mut map = lock(&self.inner.map);
        map.retain(|(name, _), session| {
            let keep = config.modules.get(name).is_some_and(|new| {
                matches!(new.prober, ProberSettings::WebSocketSession(_))
                    && new.masked_yaml == session.module.masked_yaml
                    && new.timeout == session.module.timeout
                    && new.target_policy == session.module.target_policy
            });
            if !keep {
                tracing::info!(module = %name, "Closing a WebSocket session: its module changed or was removed");
                session.stop();
            }
            keep
        });
    }

    /// Close every session and wait (at most `grace`) for their close
    /// frames to go out (shutdown).
    pub async fn close_all(&self, grace: Duration) {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.map).drain().map(|(_, s)| s).collect();
        let mut tasks = Vec::new();
        for s in &sessions {
            s.stop();
            if let Some(t) = lock(&s.task).take() {
                tasks.push(t);
            }
        }
        let _ = tokio::time::timeout(grace, futures_util::future::join_all(tasks)).await;
    }

    /// The session for (module, target), started if there is none.
    fn get_or_start(
        &self,
        module: &Arc<Module>,
        target: &str,
        start: Start,
    ) -> Result<Arc<Session>, ProbeFailure> {
        let key = (module.name.clone(), target.to_string());
        let mut map = lock(&self.inner.map);
        if let Some(s) = map.get(&key) {
            s.touch();
            return Ok(s.clone());
        }
        let max = self.inner.max.load(Ordering::Relaxed);
        if map.len() >= max {
            return Err(ProbeFailure::new(
                FailureReason::SessionLimit,
                format!(
                    "{max} sessions are open (--session.max): no new session for module {:?}, target {target:?}",
                    module.name
                ),
            ));
        }
        let (stop, stopped) = watch::channel(false);
        let (first, _) = watch::channel(false);
        let session = Arc::new(Session {
            module: module.clone(),
            times: start.times,
            state: Mutex::new(State::default()),
            last_asked: Mutex::new(Instant::now()),
            first,
            stop,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(
            self.inner.clone(),
            key.clone(),
            session.clone(),
            start,
            stopped,
        ));
        *lock(&session.task) = Some(task);
        map.insert(key, session.clone());
        Ok(session)
    }
}

/// What a session's connections need, from the probe that started it.
struct Start {
    ws: Arc<WebSocketSettings>,
    times: SessionTimes,
    target: String,
    hostname: Option<String>,
    /// Each connect (with its dialog) has this long: the first probe's
    /// timeout.
    connect_timeout: Duration,
    limits: ProbeLimits,
}

struct Session {
    module: Arc<Module>,
    times: SessionTimes,
    state: Mutex<State>,
    last_asked: Mutex<Instant>,
    /// true once the first connect attempt (with its dialog) has ended.
    first: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// When the current connection opened (None: down).
    connected_since: Option<Instant>,
    connects: u64,
    disconnects: Vec<(FailureReason, u64)>,
    last_close_code: Option<u16>,
    last_connection: Option<Duration>,
    last_message: Option<Instant>,
    ping_rtt: Option<Duration>,
    /// Why the last connection ended or the last connect failed.
    last_failure: Option<ProbeFailure>,
}

impl Session {
    fn touch(&self) {
        *lock(&self.last_asked) = Instant::now();
    }

    fn expires_at(&self) -> Instant {
        *lock(&self.last_asked) + self.times.expire_after
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn connected(&self) {
        let now = Instant::now();
        let mut st = lock(&self.state);
        st.connected_since = Some(now);
        st.connects += 1;
        st.last_message = Some(now);
    }

    fn heard(&self) {
        lock(&self.state).last_message = Some(Instant::now());
    }

    fn disconnected(&self, end: &Disconnect) {
        let mut st = lock(&self.state);
        if let Some(since) = st.connected_since.take() {
            st.last_connection = Some(since.elapsed());
        }
        match st
            .disconnects
            .iter_mut()
            .find(|(r, _)| *r == end.failure.reason)
        {
            Some((_, n)) => *n += 1,
            None => st.disconnects.push((end.failure.reason, 1)),
        }
        if let Some(code) = end.close_code {
            st.last_close_code = Some(code);
        }
        st.last_failure = Some(end.failure.clone());
    }

    fn failed(&self, failure: ProbeFailure) {
        lock(&self.state).last_failure = Some(failure);
    }

    /// The session's state as this probe's metrics; Err when it is down
    /// (or silent past `max_silence`).
    fn report(&self, cx: &ProbeContext<'_>) -> Result<(), ProbeFailure> {
        let st = lock(&self.state);
        let now = Instant::now();
        cx.metrics.set(
            &CONNECTED,
            f64::from(u8::from(st.connected_since.is_some())),
        );
        let uptime = st.connected_since.map(|s| now - s).unwrap_or_default();
        cx.metrics.set(&UPTIME, uptime.as_secs_f64());
        cx.metrics.set(&CONNECTS, st.connects as f64);
        for (reason, n) in &st.disconnects {
            cx.metrics
                .set_labelled(&DISCONNECTS, &[reason.as_str()], *n as f64);
        }
        if let Some(code) = st.last_close_code {
            cx.metrics.set(&LAST_CLOSE_CODE, f64::from(code));
        }
        if let Some(d) = st.last_connection {
            cx.metrics.set(&LAST_CONNECTION, d.as_secs_f64());
        }
        let age = st.last_message.map(|t| now - t);
        if let Some(age) = age {
            cx.metrics.set(&LAST_MESSAGE_AGE, age.as_secs_f64());
        }
        if let Some(rtt) = st.ping_rtt {
            cx.metrics.set(&PING_RTT, rtt.as_secs_f64());
        }
        cx.log.info(
            "WebSocket session state",
            &[
                ("connected", &st.connected_since.is_some()),
                ("uptime_seconds", &uptime.as_secs_f64()),
                ("connects", &st.connects),
            ],
        );
        match (st.connected_since, age) {
            (Some(_), Some(age)) if age > self.times.max_silence => Err(ProbeFailure::new(
                FailureReason::Silence,
                format!(
                    "nothing arrived for {:.1}s (max_silence {:?})",
                    age.as_secs_f64(),
                    self.times.max_silence
                ),
            )),
            (Some(_), _) => Ok(()),
            (None, _) => Err(st.last_failure.clone().unwrap_or_else(|| {
                ProbeFailure::new(FailureReason::ClosedEarly, "the session is not connected")
            })),
        }
    }
}

/// One `websocket_session` probe: find or start the session, wait for its
/// first result if it is new (within this probe's deadline), report.
pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &SessionSettings,
) -> Result<(), ProbeFailure> {
    let Some(scope) = cx.session else {
        return Err(ProbeFailure::new(
            FailureReason::InvalidTarget,
            "websocket_session needs the exporter's session registry (run it through /probe)",
        ));
    };
    websocket::parse_target(target)?;
    let start = Start {
        ws: s.ws.clone(),
        times: s.times,
        target: target.to_string(),
        hostname: cx.hostname.map(str::to_string),
        connect_timeout: cx.deadline.saturating_duration_since(Instant::now()),
        limits: cx.limits,
    };
    let session = scope.sessions.get_or_start(scope.module, target, start)?;
    let mut first = session.first.subscribe();
    if !*first.borrow() {
        cx.log
            .info("Waiting for the session's first connection", &[]);
        let _ = first.wait_for(|done| *done).await;
    }
    session.report(cx)
}

/// How a held connection ended.
struct Disconnect {
    failure: ProbeFailure,
    close_code: Option<u16>,
}

enum Held {
    /// The session was closed (reload, shutdown) or expired.
    Ended,
    Lost(Disconnect),
}

/// The session's life: connect, hold, reconnect with backoff, until it is
/// stopped or expires.
async fn run(
    inner: Arc<Inner>,
    key: Key,
    session: Arc<Session>,
    start: Start,
    mut stopped: watch::Receiver<bool>,
) {
    let times = start.times;
    let mut backoff = times.reconnect_min;
    loop {
        let attempt = connect_once(&session, &start);
        let outcome = tokio::select! {
            r = attempt => Some(r),
            () = until_stopped(&mut stopped) => None,
            () = expiry(&session) => None,
        };
        let Some(outcome) = outcome else { break };
        match outcome {
            Ok((ws, connection)) => {
                backoff = times.reconnect_min;
                session.connected();
                session.first.send_replace(true);
                let held = hold(&session, &times, ws, &mut stopped).await;
                drop(connection);
                match held {
                    Held::Ended => break,
                    Held::Lost(end) => {
                        tracing::debug!(module = %key.0, reason = %end.failure.reason, "WebSocket session disconnected: {}", end.failure.message);
                        session.disconnected(&end);
                    }
                }
            }
            Err(failure) => {
                tracing::debug!(module = %key.0, reason = %failure.reason, "WebSocket session connect failed: {}", failure.message);
                session.failed(failure);
                session.first.send_replace(true);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = until_stopped(&mut stopped) => break,
            () = expiry(&session) => break,
        }
        backoff = (backoff * 2).min(times.reconnect_max);
    }
    session.first.send_replace(true);
    // Expired (or stopped): leave the registry, unless a newer session
    // already took the key.
    let mut map = lock(&inner.map);
    if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &session)) {
        map.remove(&key);
    }
}

/// Resolves when the session is closed (reload, shutdown).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Resolves when the session has not been asked for within `expire_after`.
async fn expiry(session: &Session) {
    loop {
        let at = session.expires_at();
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

/// One connect and dialog, as a `websocket` probe makes them, under the
/// first probe's timeout.
async fn connect_once(
    session: &Session,
    start: &Start,
) -> Result<(Ws, crate::prober::client::conn::ConnectionTask), ProbeFailure> {
    let module = &session.module;
    // The connect's own gauges and log lines are scratch: a session probe
    // reports the session.
    let metrics = ProbeMetrics::new(<WebSocketSettings as Prober>::METRICS);
    let log = ProbeLog::new(&module.name, &start.target, LogFormat::Logfmt);
    let cx = ProbeContext {
        metrics: &metrics,
        log: &log,
        deadline: Instant::now() + start.connect_timeout,
        hostname: start.hostname.as_deref(),
        targets: &module.target_policy,
        limits: start.limits,
        session: None,
        on_deadline: Mutex::new(FailureReason::Timeout),
    };
    let s = &start.ws;
    let attempt = async {
        let (mut ws, connection) = websocket::connect(&cx, &start.target, s).await?;
        dialog::exchange(&cx, s, &mut ws).await?;
        Ok((ws, connection))
    };
    match tokio::time::timeout_at(cx.deadline, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ProbeFailure::new(
            cx.deadline_reason(),
            format!(
                "connect and dialog did not finish within {:?}",
                start.connect_timeout
            ),
        )),
    }
}

/// Hold an open connection: ping, watch for silence, until it ends.
async fn hold(
    session: &Session,
    times: &SessionTimes,
    mut ws: Ws,
    stopped: &mut watch::Receiver<bool>,
) -> Held {
    let mut last_heard = Instant::now();
    let mut pinger = times.ping_interval.map(|every| {
        let mut i = tokio::time::interval_at(Instant::now() + every, every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut pending: Option<(u64, Instant)> = None;
    loop {
        let ping_due = async {
            match pinger.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = ws.next() => {
                match msg {
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        let what = describe_close(&frame);
                        // Our answer to the close frame is queued: send it.
                        let _ = tokio::time::timeout(Duration::from_millis(500), ws.flush()).await;
                        return Held::Lost(Disconnect {
                            failure: ProbeFailure::new(
                                FailureReason::ClosedByServer,
                                format!("the server closed the WebSocket ({what})"),
                            ),
                            close_code: code,
                        });
                    }
                    Some(Ok(Message::Pong(p))) => {
                        last_heard = Instant::now();
                        session.heard();
                        if let Some((payload, sent)) = pending
                            && p.as_ref() == payload.to_be_bytes()
                        {
                            lock(&session.state).ping_rtt = Some(sent.elapsed());
                            pending = None;
                        }
                    }
                    Some(Ok(_)) => {
                        last_heard = Instant::now();
                        session.heard();
                    }
                    Some(Err(e)) => {
                        return Held::Lost(Disconnect {
                            failure: ProbeFailure::new(
                                session_end_reason(Some(&e)),
                                format!("the connection ended: {e}"),
                            ),
                            close_code: None,
                        });
                    }
                    None => {
                        return Held::Lost(Disconnect {
                            failure: ProbeFailure::new(
                                session_end_reason(None),
                                "the connection ended without a close frame",
                            ),
                            close_code: None,
                        });
                    }
                }
            }
            () = ping_due => {
                let payload = rand::random::<u64>();
                let sent = Instant::now();
                let send = ws.send(Message::Ping(Bytes::copy_from_slice(&payload.to_be_bytes())));
                match tokio::time::timeout(times.max_silence, send).await {
                    Ok(Ok(())) => pending = Some((payload, sent)),
                    Ok(Err(e)) => {
                        return Held::Lost(Disconnect {
                            failure: ProbeFailure::new(
                                session_end_reason(Some(&e)),
                                format!("could not send a ping: {e}"),
                            ),
                            close_code: None,
                        });
                    }
                    Err(_) => {
                        return Held::Lost(Disconnect {
                            failure: ProbeFailure::new(
                                FailureReason::Silence,
                                "a ping could not be sent within max_silence",
                            ),
                            close_code: None,
                        });
                    }
                }
            }
            () = tokio::time::sleep_until(last_heard + times.max_silence) => {
                close(&mut ws).await;
                return Held::Lost(Disconnect {
                    failure: ProbeFailure::new(
                        FailureReason::Silence,
                        format!("nothing arrived for {:?} (max_silence)", times.max_silence),
                    ),
                    close_code: None,
                });
            }
            () = until_stopped(stopped) => {
                close(&mut ws).await;
                return Held::Ended;
            }
            () = expiry(session) => {
                close(&mut ws).await;
                return Held::Ended;
            }
        }
    }
}

fn describe_close(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(f) => format!("close code {} {:?}", u16::from(f.code), f.reason.as_str()),
        None => "close frame without code".into(),
    }
}

/// Our close (1001 going away), briefly: the connection drops after it
/// either way.
async fn close(ws: &mut Ws) {
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(Some(frame))).await;
}
