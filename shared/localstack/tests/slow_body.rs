//! Slow and oversized request bodies at the emulator's front door, over a real socket.
//!
//! The deadline runs on tokio's paused clock: when every task is waiting, the clock jumps
//! to the next timer, so the test takes no wall-clock time and cannot race.

mod common;

use std::time::Duration;

use bazaar_localstack::gateway::{self, BODY_DEADLINE, MAX_BODY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one response's status line and headers, and returns (status, head).
async fn response_head(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.expect("the socket reads");
        assert!(
            n > 0,
            "the server closed without answering: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head)
}

async fn gateway() -> std::net::SocketAddr {
    let t = common::stack();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(gateway::serve_on(
        t.stack.gateway().clone(),
        listener,
        std::future::pending(),
    ));
    addr
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_past_the_deadline_is_408_and_a_whole_one_is_served() {
    let addr = gateway().await;

    // Headers promise 100 bytes; 12 arrive, then nothing.
    let mut slow = TcpStream::connect(addr).await.expect("connects");
    slow.write_all(
        b"POST /orders HTTP/1.1\r\nhost: local\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"items\": [",
    )
    .await
    .expect("writes");
    let started = tokio::time::Instant::now();
    let (status, head) = response_head(&mut slow).await;
    assert_eq!(status, 408, "{head}");
    assert!(
        started.elapsed() >= BODY_DEADLINE,
        "answered before the deadline: {:?}",
        started.elapsed()
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    // A body that arrives in pieces but within the deadline is read whole and reaches the
    // route (which refuses it for want of a token: 401, not 408).
    let mut fine = TcpStream::connect(addr).await.expect("connects");
    fine.write_all(b"POST /orders HTTP/1.1\r\nhost: local\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"items\"")
        .await
        .expect("writes");
    tokio::time::sleep(BODY_DEADLINE - Duration::from_secs(1)).await;
    fine.write_all(b": []}").await.expect("writes");
    let (status, head) = response_head(&mut fine).await;
    assert_eq!(status, 401, "{head}");
}

#[tokio::test(start_paused = true)]
async fn a_body_declared_over_the_limit_is_413_without_waiting_for_it() {
    let addr = gateway().await;
    let mut big = TcpStream::connect(addr).await.expect("connects");
    big.write_all(
        format!(
            "POST /orders HTTP/1.1\r\nhost: local\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
            MAX_BODY + 1
        )
        .as_bytes(),
    )
    .await
    .expect("writes");
    let started = tokio::time::Instant::now();
    let (status, head) = response_head(&mut big).await;
    assert_eq!(status, 413, "{head}");
    assert!(
        started.elapsed() < BODY_DEADLINE,
        "waited for the body: {:?}",
        started.elapsed()
    );
}
