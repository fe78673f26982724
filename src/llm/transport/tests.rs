use std::os::fd::RawFd;

use tokio::net::TcpListener;
use tower_service::Service;

use super::*;

/// A connection from a [`QuietConnector`] to a listener of this test, and the server's end.
async fn connection() -> (QuietIo, TcpStream, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let mut connector = QuietConnector::new(HttpConnector::new());
    let io = connector.call(uri).await.expect("connects");
    let (server, _) = listener.accept().await.expect("accepts");
    (io, server, listener)
}

/// The receive low-water mark of `fd`.
fn low_water(fd: RawFd) -> i32 {
    let mut mark: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `mark`.
    let done = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_mut(&mut mark).cast(),
            &mut len,
        )
    };
    assert_eq!(done, 0, "getsockopt");
    mark
}

fn stream_gate_of(io: &QuietIo) -> StreamGate {
    StreamGate {
        gate: io.gate.clone(),
        writes: io.gate.writes(),
    }
}

async fn write(io: &mut QuietIo, bytes: &[u8]) {
    std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, bytes))
        .await
        .expect("writes");
}

#[tokio::test]
async fn a_hold_raises_the_mark_and_a_release_lowers_it() {
    let (io, _server, _listener) = connection().await;
    let fd = io.io.inner().as_raw_fd();
    let gate = stream_gate_of(&io);
    assert_eq!(low_water(fd), 1);
    gate.hold();
    assert_eq!(low_water(fd), HELD_LOWAT);
    gate.release();
    assert_eq!(low_water(fd), 1);
}

#[tokio::test]
async fn a_new_request_on_the_connection_lowers_the_mark_and_ends_earlier_holds() {
    let (mut io, _server, _listener) = connection().await;
    let fd = io.io.inner().as_raw_fd();
    let earlier = stream_gate_of(&io);
    earlier.hold();
    assert_eq!(low_water(fd), HELD_LOWAT);
    // hyper writes the next request on a pooled connection: it must hear its answer.
    write(&mut io, b"POST / HTTP/1.1\r\n").await;
    assert_eq!(low_water(fd), 1);
    // The earlier response no longer has a say; the latest one has.
    earlier.hold();
    assert_eq!(low_water(fd), 1);
    let latest = stream_gate_of(&io);
    latest.hold();
    assert_eq!(low_water(fd), HELD_LOWAT);
}

#[tokio::test]
async fn a_closed_connection_s_gate_leaves_its_descriptor_number_alone() {
    let (io, _server, listener) = connection().await;
    let fd = io.io.inner().as_raw_fd();
    let gate = stream_gate_of(&io);
    drop(io);
    // The system gives the number to the next socket opened: find it among a few.
    let address = listener.local_addr().unwrap();
    let mut opened = Vec::new();
    let reused = loop {
        let socket = TcpStream::connect(address).await.expect("connects");
        if socket.as_raw_fd() == fd {
            break socket;
        }
        assert!(opened.len() < 64, "descriptor {fd} was not reused");
        opened.push(socket);
    };
    gate.hold();
    assert_eq!(low_water(reused.as_raw_fd()), 1);
}

#[test]
fn a_tunnel_is_asked_for_the_scheme_s_port_when_the_url_names_none() {
    let port = |url: &str| with_port(url.parse().unwrap()).to_string();
    assert_eq!(port("http://gateway/v1/x"), "http://gateway:80/v1/x");
    assert_eq!(port("https://api.x.ai/v1/x"), "https://api.x.ai:443/v1/x");
    assert_eq!(port("http://gateway:8080/v1/x"), "http://gateway:8080/v1/x");
    assert_eq!(port("https://[::1]/v1/x"), "https://[::1]:443/v1/x");
}
