//! The completion client's connections: TCP sockets the client owns, so that a streamed answer
//! its reader leaves unread for a while does not wake the bot for every token.
//!
//! The kernel wakes a process for every packet that arrives on a socket it watches, whether or
//! not anyone reads it then, and a streamed answer is a packet a token. While a preview waits for
//! its chat's next slot the reply does not read its stream (see `engine::reply`); those wake-ups
//! were a third of the bot's CPU with ten conversations. Raising the socket's receive low-water
//! mark (`SO_RCVLOWAT`) makes the kernel keep what arrives to itself until that much is there;
//! setting it back to 1 announces what came at once (Linux signals readiness when the mark is
//! lowered).
//!
//! Each connection's socket sits behind a [`Gate`]. Every response carries its connection's gate
//! (hyper puts a connection's extras into every response it reads on it), from which the
//! response's stream gets a [`StreamGate`]; the mark changes only while the connection is open
//! and still serving that response:
//! - closing the connection closes the gate first, under its lock, so a mark is never set on a
//!   descriptor number the system has given to another socket;
//! - writing on the connection (the next request, once hyper has pooled it) lowers the mark and
//!   ends every earlier response's say over it, so a pooled connection never answers quietly.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::engine::ports::Hold;

/// The low-water mark while a stream is held: more than a held slice's tokens (2 s at 50 tokens a
/// second is about 15 KB of SSE), far under the receive buffer.
const HELD_LOWAT: i32 = 32 * 1024;

/// Connects like hyper's [`HttpConnector`] and puts each socket behind a [`Gate`].
#[derive(Debug, Clone)]
pub(super) struct QuietConnector {
    http: HttpConnector,
}

impl QuietConnector {
    pub(super) fn new(http: HttpConnector) -> Self {
        Self { http }
    }
}

impl tower_service::Service<Uri> for QuietConnector {
    type Response = QuietIo;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuietIo, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            let gate = Arc::new(Gate::new(io.inner().as_raw_fd()));
            Ok(QuietIo { io, gate })
        })
    }
}

/// How the client reaches the API: straight, or through an HTTP proxy's `CONNECT` tunnel (the
/// socket is then the one to the proxy, and quiet all the same).
#[derive(Debug, Clone)]
pub(super) enum Route {
    Direct(QuietConnector),
    Tunnel(Tunnel<QuietConnector>),
}

impl Route {
    /// Straight to the API unless `proxies` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`) send `url` through a proxy.
    pub(super) fn new(connector: QuietConnector, url: &Uri, proxies: &Matcher) -> Self {
        let Some(proxy) = proxies.intercept(url) else {
            return Self::Direct(connector);
        };
        let tunnel = Tunnel::new(proxy.uri().clone(), connector);
        match proxy.basic_auth() {
            Some(auth) => Self::Tunnel(tunnel.with_auth(auth.clone())),
            None => Self::Tunnel(tunnel),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Route {
    type Response = QuietIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuietIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Direct(direct) => direct.poll_ready(cx).map_err(Into::into),
            Self::Tunnel(tunnel) => tunnel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Self::Direct(direct) => {
                let connecting = direct.call(uri);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Self::Tunnel(tunnel) => {
                // The tunnel asks for the API's port, 443 when the URL names none.
                let connecting = tunnel.call(with_port(uri));
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// `uri` with its scheme's port written out when it names none.
fn with_port(uri: Uri) -> Uri {
    let (Some(host), None) = (uri.host(), uri.port_u16()) else {
        return uri;
    };
    let port = if uri.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let mut parts = uri.clone().into_parts();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match format!("{host}:{port}").parse() {
        Ok(authority) => {
            parts.authority = Some(authority);
            Uri::from_parts(parts).unwrap_or(uri)
        }
        Err(_) => uri,
    }
}

/// One connection's socket, and who may change its low-water mark.
#[derive(Debug)]
pub(super) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    /// The socket's descriptor while the connection is open.
    fd: Option<RawFd>,
    /// Requests written on the connection so far (counted at each write).
    writes: u64,
    /// The mark is raised.
    held: bool,
}

impl GateState {
    /// Lowers the mark if it is raised.
    fn lower(&mut self) {
        if let Some(fd) = self.fd
            && self.held
        {
            set_low_water(fd, 1);
            self.held = false;
        }
    }
}

impl Gate {
    fn new(fd: RawFd) -> Self {
        Self {
            state: Mutex::new(GateState {
                fd: Some(fd),
                writes: 0,
                held: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Raises the mark if the connection is open and has written nothing since `writes`.
    fn hold(&self, writes: u64) {
        let mut state = self.lock();
        if let Some(fd) = state.fd
            && state.writes == writes
            && !state.held
        {
            set_low_water(fd, HELD_LOWAT);
            state.held = true;
        }
    }

    /// Lowers the mark, if it is raised, which announces what has come.
    fn release(&self) {
        self.lock().lower();
    }

    /// The connection writes: a new request. Earlier responses lose their hold.
    fn wrote(&self) {
        let mut state = self.lock();
        state.writes += 1;
        state.lower();
    }

    fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// The connection closes: nothing may touch its descriptor any more.
    fn close(&self) {
        self.lock().fd = None;
    }
}

/// The gate of the connection a response came on, as the response's extension; see
/// [`StreamGate::hold`].
#[derive(Debug, Clone)]
pub(super) struct StreamGate {
    gate: Arc<Gate>,
    writes: u64,
}

impl Hold for StreamGate {
    /// Raises the mark while this response is still the connection's latest.
    fn hold(&self) {
        self.gate.hold(self.writes);
    }

    /// Lowers the mark if it is raised.
    fn release(&self) {
        self.gate.release();
    }
}

/// The hold of the connection `response` came on, if it came on one of ours (HTTP/1: over HTTP/2
/// a quiet socket would keep other streams waiting too).
pub(super) fn stream_gate<B>(response: &hyper::Response<B>) -> Option<StreamGate> {
    let http1 = matches!(
        response.version(),
        hyper::Version::HTTP_10 | hyper::Version::HTTP_11
    );
    let found = response.extensions().get::<ConnectionGate>()?;
    http1.then(|| StreamGate {
        writes: found.0.writes(),
        gate: found.0.clone(),
    })
}

/// What a connection puts into its responses' extensions.
#[derive(Debug, Clone)]
struct ConnectionGate(Arc<Gate>);

/// A socket of the completion client.
#[derive(Debug)]
pub(super) struct QuietIo {
    io: TokioIo<TcpStream>,
    gate: Arc<Gate>,
}

impl Drop for QuietIo {
    fn drop(&mut self) {
        // Before `io` closes the descriptor (fields drop after this).
        self.gate.close();
    }
}

impl Connection for QuietIo {
    fn connected(&self) -> Connected {
        self.io.connected().extra(ConnectionGate(self.gate.clone()))
    }
}

impl Read for QuietIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for QuietIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.gate.wrote();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.gate.wrote();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Sets a socket's receive low-water mark; a failure costs only wake-ups.
#[cfg(target_os = "linux")]
fn set_low_water(fd: RawFd, bytes: i32) {
    // SAFETY: a plain setsockopt on a descriptor the caller holds open (the gate's lock), with a
    // pointer to a live i32 and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// Elsewhere a raised mark may not be announced when lowered: the socket is left alone.
#[cfg(not(target_os = "linux"))]
fn set_low_water(_: RawFd, _: i32) {}

#[cfg(test)]
mod tests;
