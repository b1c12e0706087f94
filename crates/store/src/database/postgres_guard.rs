//! A PostgreSQL connection without TLS whose startup is watched: when the server asks for a cleartext or an
//! MD5 password, the read fails before the driver sees the request, so the password never leaves.
//!
//! tokio-postgres has no option to refuse those methods without TLS (its `channel_binding=require` needs
//! TLS), so the guard sits under the driver, on the socket, and parses the backend's messages up to the end
//! of authentication: a type byte, a 4-byte length, and for an authentication request ('R') a 4-byte method.
//! After `AuthenticationOk` or an error it stops looking.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The server asked for a method that would send the password itself (or its MD5) over a connection whose
/// server is not verified.
#[derive(Debug, thiserror::Error)]
#[error("the server asked for {method}, which would send the password to an unverified server")]
pub struct InsecureMethod {
    /// `a cleartext password` or `an MD5 password`.
    pub method: &'static str,
}

const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;

/// Where the parse of the backend's stream is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Collecting a message's header: type, length and, for 'R', the method (9 bytes at most).
    Header { buf: [u8; 9], have: usize },
    /// Skipping the rest of a message's body.
    Skip(usize),
    /// Authentication is over; the rest is the driver's business.
    Done,
}

/// The backend side of a startup, parsed incrementally.
#[derive(Debug, Clone, Copy)]
pub struct StartupWatch {
    phase: Phase,
}

impl Default for StartupWatch {
    fn default() -> Self {
        StartupWatch {
            phase: Phase::Header {
                buf: [0; 9],
                have: 0,
            },
        }
    }
}

impl StartupWatch {
    /// Feeds bytes the server sent; an error when they ask for a forbidden method or break the framing.
    pub fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Done => return Ok(()),
                Phase::Skip(n) => {
                    let k = (*n).min(bytes.len());
                    *n -= k;
                    bytes = &bytes[k..];
                    if *n == 0 {
                        self.phase = StartupWatch::default().phase;
                    }
                }
                Phase::Header { buf, have } => {
                    let want = if *have >= 1 && buf[0] == b'R' { 9 } else { 5 };
                    let k = (want - *have).min(bytes.len());
                    buf[*have..*have + k].copy_from_slice(&bytes[..k]);
                    *have += k;
                    bytes = &bytes[k..];
                    if *have < 5 {
                        continue;
                    }
                    let kind = buf[0];
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    if len < 4 || (kind == b'R' && len < 8) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("a startup message of type {kind} with length {len}"),
                        ));
                    }
                    if kind == b'R' && *have < 9 {
                        continue;
                    }
                    self.phase = match kind {
                        b'R' => {
                            let method = i32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                            let refused = match method {
                                AUTH_CLEARTEXT => Some("a cleartext password"),
                                AUTH_MD5 => Some("an MD5 password"),
                                _ => None,
                            };
                            if let Some(method) = refused {
                                return Err(io::Error::new(
                                    io::ErrorKind::PermissionDenied,
                                    InsecureMethod { method },
                                ));
                            }
                            match (method, len - 8) {
                                (AUTH_OK, _) => Phase::Done,
                                (_, 0) => StartupWatch::default().phase,
                                (_, rest) => Phase::Skip(rest),
                            }
                        }
                        b'E' => Phase::Done,
                        _ => match len - 4 {
                            0 => StartupWatch::default().phase,
                            rest => Phase::Skip(rest),
                        },
                    };
                }
            }
        }
        Ok(())
    }
}

/// A TCP stream whose incoming startup is checked by a [`StartupWatch`].
pub struct GuardedStream {
    inner: TcpStream,
    watch: StartupWatch,
}

impl GuardedStream {
    /// Wraps a connected socket.
    pub fn new(inner: TcpStream) -> GuardedStream {
        GuardedStream {
            inner,
            watch: StartupWatch::default(),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.watch.feed(&buf.filled()[before..])?;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The refusal inside a driver error, if the guard is why it failed.
pub fn insecure_method(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(m) = inner.downcast_ref::<InsecureMethod>()
        {
            return Some(m.method);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(method: i32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&((8 + extra.len()) as u32).to_be_bytes());
        m.extend_from_slice(&method.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    fn feed_in_pieces(stream: &[u8], piece: usize) -> io::Result<StartupWatch> {
        let mut w = StartupWatch::default();
        for chunk in stream.chunks(piece) {
            w.feed(chunk)?;
        }
        Ok(w)
    }

    #[test]
    fn cleartext_and_md5_are_refused_however_the_bytes_arrive() {
        for (method, name) in [(3, "cleartext"), (5, "MD5")] {
            let extra: &[u8] = if method == 5 { b"salt" } else { b"" };
            for piece in 1..=10 {
                let err = feed_in_pieces(&auth(method, extra), piece).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
                assert!(err.to_string().contains(name), "{err}");
            }
        }
    }

    #[test]
    fn a_scram_exchange_then_ok_passes_and_the_rest_is_not_parsed() {
        let mut s = auth(10, b"SCRAM-SHA-256\0\0");
        s.extend(auth(11, b"r=abc,s=def,i=4096"));
        s.extend(auth(12, b"v=xyz"));
        s.extend(auth(0, b""));
        // After AuthenticationOk anything goes, even bytes that would read as a cleartext request.
        s.extend(auth(3, b""));
        for piece in 1..=12 {
            let w = feed_in_pieces(&s, piece).unwrap();
            assert!(matches!(w.phase, Phase::Done), "{piece}: {:?}", w.phase);
        }
    }

    #[test]
    fn other_messages_before_authentication_are_skipped() {
        // NegotiateProtocolVersion ('v') then a SASL request then a cleartext request: still refused.
        let mut s = vec![b'v'];
        s.extend_from_slice(&12u32.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0]);
        s.extend(auth(3, b""));
        assert!(feed_in_pieces(&s, 3).is_err());
    }

    #[test]
    fn an_error_response_ends_the_watch() {
        let mut s = vec![b'E'];
        s.extend_from_slice(&9u32.to_be_bytes());
        s.extend_from_slice(b"SFATA");
        s.extend(auth(3, b""));
        let w = feed_in_pieces(&s, 2).unwrap();
        assert!(matches!(w.phase, Phase::Done));
    }

    #[test]
    fn a_broken_length_is_an_error() {
        let mut s = vec![b'R'];
        s.extend_from_slice(&2u32.to_be_bytes());
        let err = feed_in_pieces(&s, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
