//! Keeps a streamed answer's socket quiet while the reply leaves it unread.
//!
//! The kernel wakes the bot for every packet that arrives on a socket it watches, whether or not
//! anyone will read it then, and a streamed answer is a packet a token. While a preview waits
//! for its slot the reply does not read (see `engine::reply`), so those wake-ups are all waste:
//! at 50 tokens a second they were a third of the bot's CPU with ten conversations. Raising the
//! socket's receive low-water mark (`SO_RCVLOWAT`) makes the kernel keep arriving data to itself
//! until that much is there; setting it back to 1 announces what came at once (Linux signals
//! readiness when the mark is lowered).
//!
//! reqwest does not hand out its sockets, so the socket is found by its addresses (the
//! connection's `HttpInfo`) among the process's open descriptors, and checked again before each
//! change: a descriptor that no longer holds that connection is left alone.
//!
//! hyper puts a connection back in its pool once it has read the end of the body, which it can
//! do as soon as the reply has taken the last chunk. The reply therefore never holds a stream
//! whose finish reason it has seen (`engine::reply`): what is left then is the usage and the end,
//! already on their way. Known limit: a stream that ends without a finish reason (a provider
//! fault, reported as incomplete) could be held after its last chunk; if another request took
//! that connection meanwhile, its response would be announced at most one hold slice (2 s)
//! late. A delay, never a loss.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::HttpInfo;

use crate::engine::ports::Hold;

/// The low-water mark while held: more than a held slice's tokens (2 s at 50 tokens a second
/// is ~15 KB of SSE), well under the receive buffer (the kernel grows the buffer to twice the
/// mark, so this also bounds what a held socket may cost).
const HELD_LOWAT: i32 = 32 * 1024;

/// Shortest gap between two scans of the descriptor table: a burst of new connections is found
/// by one scan, and one that is missed is looked for again at its next hold.
const SCAN_EVERY: Duration = Duration::from_millis(20);

/// The hold of the connection a response came on, when its socket can be told.
pub(super) fn for_response(response: &reqwest::Response) -> Option<Box<dyn Hold>> {
    // One response per connection: over HTTP/2 a held socket would hold other streams too.
    let http1 = matches!(
        response.version(),
        reqwest::Version::HTTP_10 | reqwest::Version::HTTP_11
    );
    if !cfg!(target_os = "linux") || !http1 {
        return None;
    }
    let info = response.extensions().get::<HttpInfo>()?;
    Some(Box::new(SocketHold {
        local: info.local_addr(),
        peer: info.remote_addr(),
        held: AtomicBool::new(false),
    }))
}

/// One connection, by its addresses.
#[derive(Debug)]
struct SocketHold {
    local: SocketAddr,
    peer: SocketAddr,
    held: AtomicBool,
}

impl Hold for SocketHold {
    fn set(&self, held: bool) {
        if self.held.swap(held, Ordering::Relaxed) == held {
            return;
        }
        if let Some(fd) = sockets::find(self.local, self.peer) {
            sockets::set_low_water(fd, if held { HELD_LOWAT } else { 1 });
        }
    }
}

impl Drop for SocketHold {
    /// The connection goes back to the pool: it must announce data again.
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Local address → descriptor of the process's sockets, as last scanned.
struct Table {
    by_local: HashMap<SocketAddr, i32>,
    scanned: Option<Instant>,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        by_local: HashMap::new(),
        scanned: None,
    })
});

#[cfg(target_os = "linux")]
mod sockets {
    use std::net::SocketAddr;
    use std::os::fd::BorrowedFd;
    use std::time::Instant;

    use super::{SCAN_EVERY, TABLE};

    /// The descriptor holding the connection `local` → `peer`, if it is open.
    pub(super) fn find(local: SocketAddr, peer: SocketAddr) -> Option<i32> {
        let mut table = TABLE.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(&fd) = table.by_local.get(&local)
            && holds(fd, local, peer)
        {
            return Some(fd);
        }
        let now = Instant::now();
        if table.scanned.is_some_and(|at| now < at + SCAN_EVERY) {
            return None;
        }
        table.scanned = Some(now);
        table.by_local = scan();
        let fd = *table.by_local.get(&local)?;
        holds(fd, local, peer).then_some(fd)
    }

    /// True when `fd` is a socket connected from `local` to `peer`.
    fn holds(fd: i32, local: SocketAddr, peer: SocketAddr) -> bool {
        let address = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        with_socket(fd, |socket| {
            address(socket.local_addr()) == Some(local) && address(socket.peer_addr()) == Some(peer)
        })
        .unwrap_or(false)
    }

    /// Every open socket of the process by its local address.
    fn scan() -> std::collections::HashMap<SocketAddr, i32> {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return Default::default();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|fd| {
                let local = with_socket(fd, |socket| socket.local_addr())?
                    .ok()?
                    .as_socket()?;
                Some((local, fd))
            })
            .collect()
    }

    /// Runs `ask` on `fd` as a socket.
    fn with_socket<T>(fd: i32, ask: impl FnOnce(socket2::SockRef<'_>) -> T) -> Option<T> {
        if fd < 0 {
            return None;
        }
        // SAFETY: the descriptor is only borrowed for getsockname/getpeername calls; if it was
        // closed meanwhile they fail (EBADF/ENOTSOCK), they never touch its memory.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        Some(ask(socket2::SockRef::from(&fd)))
    }

    /// Sets the socket's receive low-water mark; a failure only costs wake-ups.
    pub(super) fn set_low_water(fd: i32, bytes: i32) {
        // SAFETY: a plain setsockopt with a pointer to a live i32 and its size.
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
}

#[cfg(not(target_os = "linux"))]
mod sockets {
    use std::net::SocketAddr;

    pub(super) fn find(_: SocketAddr, _: SocketAddr) -> Option<i32> {
        None
    }

    pub(super) fn set_low_water(_: i32, _: i32) {}
}
