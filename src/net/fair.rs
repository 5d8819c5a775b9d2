//! A stream that gives the runtime a turn after every [`BYTES_PER_TURN`]
//! bytes read.
//!
//! A probe's deadline is a timer, and a timer only fires when the probe's
//! task returns `Pending`. A peer that sends without pause keeps the socket
//! readable, and a parser that finds nothing complete in what it reads
//! (empty WebSocket continuation frames, one-byte HTTP chunks) reads again
//! at once: tokio's own budget (128 reads of up to 128 KiB) let such a task
//! run for seconds past its deadline. Reading through [`Fair`], no task
//! handles more than 16 KiB from one connection before it yields, and the
//! runtime checks its timers before the task runs again, so the deadline
//! fires within one such slice of parsing.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read between two turns given to the runtime.
pub const BYTES_PER_TURN: usize = 16 * 1024;

/// `inner`, yielding after every [`BYTES_PER_TURN`] bytes read.
pub struct Fair<S> {
    inner: S,
    read_since_turn: usize,
}

impl<S> Fair<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            read_since_turn: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Fair<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read_since_turn >= BYTES_PER_TURN {
            self.read_since_turn = 0;
            // tokio's own yield defers the wake until the runtime has
            // polled its drivers, so the deadline's timer is seen before
            // this task runs again; a plain self-wake would be polled again
            // up to 61 times first (the scheduler's event interval).
            let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => self.read_since_turn += buf.filled().len() - before,
            // The task yields anyway.
            Poll::Pending => self.read_since_turn = 0,
            Poll::Ready(Err(_)) => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Fair<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn yields_after_a_turn_of_bytes_and_loses_nothing() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..(3 * BYTES_PER_TURN + 100))
            .map(|i| (i % 251) as u8)
            .collect();
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut fair = Fair::new(rx);
        let mut got = Vec::new();
        let mut pendings = 0;
        let mut chunk = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut chunk);
            let polled =
                std::future::poll_fn(|cx| match Pin::new(&mut fair).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Ready(None),
                    Poll::Ready(r) => Poll::Ready(Some(r)),
                })
                .await;
            match polled {
                None => pendings += 1,
                Some(r) => {
                    r.unwrap();
                    if buf.filled().is_empty() {
                        break;
                    }
                    got.extend_from_slice(buf.filled());
                }
            }
        }
        assert_eq!(got, data);
        // Everything was ready at once: the only Pendings are the turns.
        assert_eq!(pendings, 3);
        // And a plain read_to_end still works through it.
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut all = Vec::new();
        Fair::new(rx).read_to_end(&mut all).await.unwrap();
        assert_eq!(all, data);
    }
}
