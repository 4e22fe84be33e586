//! `launcher serve`: the router on a TCP port, with a read deadline.
//!
//! `axum::serve` sets no timer, so hyper applies no header read timeout and
//! a client could hold a connection open for as long as it liked by sending
//! a request slowly (headers a byte at a time, or a large declared body
//! that never arrives). Every connection here must deliver each request,
//! headers and body, within `limit` of being accepted or of its previous
//! response; a read still waiting at the deadline ends the connection.
//! (In Lambda the Function URL reads the request before the function runs.)

use axum::serve::Listener;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Default for `launcher serve --read-timeout-seconds`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP listener whose connections carry a [`ReadDeadline`].
pub struct DeadlineListener {
    inner: TcpListener,
    limit: Duration,
}

impl DeadlineListener {
    pub fn new(inner: TcpListener, limit: Duration) -> Self {
        DeadlineListener { inner, limit }
    }
}

impl Listener for DeadlineListener {
    type Io = ReadDeadline<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.inner).await;
        (ReadDeadline::new(io, self.limit), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A stream whose reads fail with `TimedOut` once `limit` has passed since
/// it was opened or since it last wrote (answered a request).
pub struct ReadDeadline<S> {
    inner: S,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> ReadDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        ReadDeadline {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("request not read within {:?}", this.limit),
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            // An answer went out: the next request has its own `limit`.
            let next = Instant::now() + this.limit;
            this.deadline.as_mut().reset(next);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serve `router` on `listener` until `shutdown` resolves; each request
/// must be read within `read_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(DeadlineListener::new(listener, read_timeout), router)
        .with_graceful_shutdown(shutdown)
        .await
}
