//! How every fake server treats the connections it accepts: as production servers do.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

/// How long a fake keeps an idle keep-alive connection open by default: about what the servers
/// in front of the real APIs keep (nginx 75 s, cloud load balancers 60 s). A client must expect
/// the server to close a connection it has not used for a while.
pub const IDLE: Duration = Duration::from_secs(60);

/// Sends each write at once, as production servers do (nginx's `tcp_nodelay on`). With Nagle's
/// algorithm a small write waits until the previous one is acknowledged, and the bot's kernel
/// may delay that acknowledgement by 40 ms: a stall of the fake, which the load benchmark then
/// counted against the bot (a gateway event, an SSE chunk, an API answer, late by up to 40 ms).
pub fn no_delay(tcp: &mut TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// Serves `app` on `listener` over HTTP/1.1 (upgrades included, for WebSockets): connections
/// stay open between requests until they have been idle for `idle`, then the server closes
/// them, as real servers do.
pub async fn serve(listener: TcpListener, app: Router, idle: Duration) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            continue;
        };
        no_delay(&mut tcp);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(idle);
            let connection = builder.serve_connection(TokioIo::new(tcp), service);
            let _ = connection.with_upgrades().await;
        });
    }
}
