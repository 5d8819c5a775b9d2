//! The exporter's own connections: bounded in number, and none held open by
//! a client that sends nothing useful.
//!
//! Every accepted socket is wrapped in a [`TimedIo`] that knows what the
//! connection is doing:
//! - **idle** (between requests): closed after the idle timeout (2 min);
//! - **reading a request head** (bytes arrived, no request yet — a TLS
//!   handshake counts): closed after the header timeout (10 s), so a client
//!   sending a byte every few seconds cannot hold it;
//! - **busy** (a request is being served): no timeout here; a probe has its
//!   own deadline.
//!
//! The [`Tracker`] admits at most `max_connections`; to admit one more it
//! closes the oldest idle connection, and when none is idle the new
//! connection is refused (closed at once) rather than queued.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The bounds of the exporter's own HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `--web.read-header-timeout`: from the first byte of a request head
    /// (or of a TLS handshake) to the whole head.
    pub read_header_timeout: Duration,
    /// `--web.idle-timeout`: a keep-alive connection with no request.
    pub idle_timeout: Duration,
    /// `--web.max-connections` (lowered to half the open-file limit).
    pub max_connections: usize,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle(Instant),
    Head(Instant),
}

/// What one connection is doing, shared by its IO, its requests and the
/// tracker.
#[derive(Debug)]
pub struct ConnState {
    /// Requests being served.
    busy: AtomicUsize,
    phase: Mutex<Phase>,
    /// Set to make the connection close at its next read.
    close: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ConnState {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            phase: Mutex::new(Phase::Idle(Instant::now())),
            close: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && matches!(self.phase(), Phase::Idle(_))
    }

    /// Close the connection now (it is idle: nothing is lost).
    fn close_now(&self) {
        self.close.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }

    /// A request started; the returned guard marks its end.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }
}

/// Held while a request is served; the connection is idle again once the
/// last one ends.
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.set_phase(Phase::Idle(Instant::now()));
        }
    }
}

/// Admits connections up to the cap (see the module docs).
#[derive(Debug)]
pub struct Tracker {
    limits: ConnLimits,
    /// Oldest first.
    conns: Mutex<VecDeque<Weak<ConnState>>>,
}

impl Tracker {
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            conns: Mutex::new(VecDeque::new()),
        }
    }

    /// Admit a new connection, closing the oldest idle one when at the
    /// cap; None when every connection is busy (the new one is refused).
    pub fn admit(&self) -> Option<Arc<ConnState>> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| c.strong_count() > 0);
        if conns.len() >= self.limits.max_connections {
            let oldest_idle = conns
                .iter()
                .position(|c| c.upgrade().is_some_and(|c| c.is_idle()))?;
            if let Some(victim) = conns.remove(oldest_idle).and_then(|c| c.upgrade()) {
                victim.close_now();
            }
        }
        let state = Arc::new(ConnState::new());
        conns.push_back(Arc::downgrade(&state));
        Some(state)
    }
}

/// A socket that closes itself when its connection idles or dawdles too
/// long (see the module docs).
pub struct TimedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    limits: ConnLimits,
    sleep: Pin<Box<Sleep>>,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, limits: ConnLimits) -> Self {
        Self {
            inner,
            state,
            limits,
            sleep: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.state.close.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to admit a new connection",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got_bytes = buf.filled().len() > before;
                if got_bytes
                    && this.state.busy.load(Ordering::SeqCst) == 0
                    && matches!(this.state.phase(), Phase::Idle(_))
                {
                    this.state.set_phase(Phase::Head(Instant::now()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                *this.state.waker.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(cx.waker().clone());
                if this.state.busy.load(Ordering::SeqCst) > 0 {
                    return Poll::Pending;
                }
                let (deadline, what) = match this.state.phase() {
                    Phase::Idle(since) => (since + this.limits.idle_timeout, "idle"),
                    Phase::Head(since) => (
                        since + this.limits.read_header_timeout,
                        "request head not received",
                    ),
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connection {what} for too long"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The open-file limit of this process (soft), from /proc/self/limits.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

/// `--web.max-connections`, lowered to half the open-file limit so that
/// probes (and `/-/healthy`) still find descriptors.
pub fn effective_max_connections(flag: usize) -> usize {
    match open_file_limit() {
        Some(nofile) => flag.min((nofile / 2).max(8)),
        None => flag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnLimits {
        ConnLimits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: max,
        }
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room() {
        let t = Tracker::new(limits(2));
        let a = t.admit().expect("a");
        let b = t.admit().expect("b");
        let busy = a.request();
        // a is busy, b idle: b is closed for c.
        let c = t.admit().expect("c");
        assert!(b.close.load(Ordering::SeqCst));
        assert!(!a.close.load(Ordering::SeqCst));
        drop(b);
        // a busy, c reading a head: nobody to close, d is refused.
        c.set_phase(Phase::Head(Instant::now()));
        assert!(t.admit().is_none());
        drop(busy);
        // a idle again: it makes room.
        assert!(t.admit().is_some());
        assert!(a.close.load(Ordering::SeqCst));
    }

    #[test]
    fn the_cap_leaves_descriptors() {
        assert!(effective_max_connections(usize::MAX) < usize::MAX);
        assert_eq!(effective_max_connections(4), 4);
    }
}
