//! Reading a `parley run` process's log.

use std::net::SocketAddr;

/// The address of the `/healthz` listener the log names, once it does.
pub fn http_address(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("serving /healthz"))?;
    let at = line.find("127.0.0.1:")?;
    let port: String = line[at + 10..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    format!("127.0.0.1:{port}").parse().ok()
}
