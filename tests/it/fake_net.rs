//! What every fake server does to the connections it accepts.

use tokio::net::TcpStream;

/// Sends each write at once, as production servers do (nginx's `tcp_nodelay on`). With Nagle's
/// algorithm a small write waits until the previous one is acknowledged, and the bot's kernel
/// may delay that acknowledgement by 40 ms: a stall of the fake, which the load benchmark then
/// counted against the bot (a gateway event, an SSE chunk, an API answer, late by up to 40 ms).
pub fn no_delay(tcp: &mut TcpStream) {
    let _ = tcp.set_nodelay(true);
}
