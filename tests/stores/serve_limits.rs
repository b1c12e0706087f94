//! `serve` against clients that try to hold its connections: a body is read only after the headers
//! authenticate, and slow headers and bodies are cut off. Raw TCP on loopback, the real server.

use crate::support::csms as csms_support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than the server's bounds (10 s): the client's own budget, after which the test fails.
const CLIENT_BUDGET: Duration = Duration::from_secs(40);

async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server answers and closes, or the budget runs out (`None`).
async fn answer(s: &mut (impl AsyncReadExt + Unpin)) -> Option<String> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(CLIENT_BUDGET, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if String::from_utf8_lossy(&buf).contains("}}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test]
async fn an_unauthenticated_body_is_never_waited_for() {
    let srv = csms_support::start(None).await;
    let mut s = connect(&srv.url).await;
    // Announces 60 000 bytes and sends none: a bad token is refused from the headers alone.
    let head = format!(
        "POST /v1/{}/secrets HTTP/1.1\r\nHost: x\r\nX-Auth-Token: wrong\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n",
        csms_support::PROJECT
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let got = answer(&mut s)
        .await
        .expect("the server answered without the body");
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    assert!(got.contains("CSMS.0401"), "{got}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    let srv = csms_support::start(None).await;
    let (mut reader, mut s) = connect(&srv.url).await.into_split();
    let head = format!(
        "POST /v1/{}/secrets HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":",
        csms_support::PROJECT,
        csms_support::TOKEN
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One byte a second, far slower than any client sends a 1000-byte body.
    let trickle = async {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let got = tokio::select! {
        got = answer(&mut reader) => got,
        _ = trickle => None,
    };
    let got = got.expect("the server cut the slow body off");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("CSMS.0408"), "{got}");
    assert!(started.elapsed() < CLIENT_BUDGET);
}

#[tokio::test]
async fn trickled_headers_are_cut_off() {
    let srv = csms_support::start(None).await;
    let mut s = connect(&srv.url).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A header line a byte at a time, never finished.
    let mut closed = false;
    let deadline = Instant::now() + CLIENT_BUDGET;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(10), s.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // An answer (408) also ends the connection.
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "the server still held the connection after {CLIENT_BUDGET:?}"
    );
}
