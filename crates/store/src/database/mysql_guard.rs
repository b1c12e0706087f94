//! MySQL without a verified server: a relay between the driver and the server that watches the
//! authentication and ends the connection before the driver would send the password itself.
//!
//! `caching_sha2_password` has a "full authentication" step (the server answers `0x01 0x04`) in which the
//! client sends the password in clear over TLS, or encrypted with a public key the server hands out. Against a
//! server that is not verified both give the password to whoever answers, and mysql_async has no option to
//! refuse the step. So, unless `tls.mode` is `verify-full`, the driver talks to this relay on the loopback
//! interface, and the relay talks to the server:
//!
//! - it reads the packets of the authentication exchange (4-byte header, payload) and refuses full
//!   authentication and any switch to a plugin other than `mysql_native_password`, `caching_sha2_password`
//!   (fast path), `client_ed25519` and `parsec`, which prove the password without sending it;
//! - with `tls.mode: require` it holds the TLS itself: it hides the server's TLS capability from the driver,
//!   sends the SSL request, wraps the server side in TLS and shifts the sequence numbers of the exchange by
//!   one (the SSL request took one);
//! - once the server says OK (or an error) it copies bytes both ways and looks no further.

use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::CONNECT_TIMEOUT;
use crate::changer::ChangeError;

const CLIENT_SSL: u32 = 0x0000_0800;

/// Plugins that prove the password without sending it (the driver refuses the cleartext plugin itself).
const SAFE_PLUGINS: &[&[u8]] = &[
    b"mysql_native_password",
    b"caching_sha2_password",
    b"client_ed25519",
    b"parsec",
];

/// A relay ready for one connection from the driver on `127.0.0.1:port`.
pub struct Relay {
    /// The loopback port the driver connects to.
    pub port: u16,
    outcome: Arc<Mutex<Option<ChangeError>>>,
}

impl Relay {
    /// Why the relay ended the connection, if it did (a refusal, or a TLS failure toward the server).
    pub fn failure(&self) -> Option<ChangeError> {
        self.outcome.lock().ok().and_then(|o| o.clone())
    }
}

/// Connects to the server and starts a relay for it; with `tls`, the relay speaks TLS to the server.
pub async fn start(
    host: &str,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    where_: &str,
) -> Result<Relay, ChangeError> {
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ChangeError::new("TIMEOUT", format!("connecting to {where_} timed out")))?
        .map_err(|e| ChangeError::new("CONNECT", format!("connecting to {where_}: {e}")))?;
    let _ = upstream.set_nodelay(true);
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| ChangeError::new("CONNECT", format!("opening the relay for {where_}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ChangeError::new("CONNECT", format!("opening the relay for {where_}: {e}")))?;
    let name = match tls {
        Some(cfg) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                ChangeError::new("TLS", format!("{host} is not a TLS server name: {e}"))
            })?;
            Some((cfg, name))
        }
        None => None,
    };
    let outcome = Arc::new(Mutex::new(None));
    let slot = outcome.clone();
    let where_ = where_.to_owned();
    tokio::spawn(async move {
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, listener.accept()).await {
            Ok(Ok((client, _))) => client,
            _ => return,
        };
        drop(listener);
        let _ = client.set_nodelay(true);
        if let Err(e) = relay(client, upstream, name, &where_).await
            && let Ok(mut o) = slot.lock()
        {
            *o = Some(e);
        }
    });
    Ok(Relay {
        port: local.port(),
        outcome,
    })
}

/// An I/O failure of the relay, for the driver's side nobody reads: the driver sees the connection close.
fn io(where_: &str) -> impl Fn(std::io::Error) -> ChangeError + '_ {
    move |e| ChangeError::new("CONNECT", format!("relaying to {where_}: {e}"))
}

async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok((head[3], payload))
}

async fn write_packet<W: AsyncWrite + Unpin>(
    w: &mut W,
    seq: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let [a, b, c, _] = len.to_le_bytes();
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&[a, b, c, seq]);
    out.extend_from_slice(payload);
    w.write_all(&out).await?;
    w.flush().await
}

/// The offset of the lower capability flags in an initial handshake (protocol 10).
fn capability_offset(greeting: &[u8]) -> Option<usize> {
    if greeting.first() != Some(&10) {
        return None;
    }
    let version_end = greeting[1..].iter().position(|b| *b == 0)? + 1;
    // version NUL, connection id (4), scramble part 1 (8), filler (1).
    let off = version_end + 1 + 4 + 8 + 1;
    (greeting.len() >= off + 2).then_some(off)
}

/// What the server asks for during authentication, judged: `Err` names what would reveal the password.
pub fn judge(packet: &[u8]) -> Result<(), String> {
    match packet {
        [0xfe, rest @ ..] => {
            let name = rest.split(|b| *b == 0).next().unwrap_or_default();
            if SAFE_PLUGINS.contains(&name) {
                Ok(())
            } else if name.is_empty() {
                Err("the old mysql_old_password method".to_owned())
            } else {
                Err(format!(
                    "a switch to the {} plugin",
                    String::from_utf8_lossy(name)
                ))
            }
        }
        [0x01, 0x04, ..] => Err("caching_sha2_password full authentication".to_owned()),
        _ => Ok(()),
    }
}

fn refused(where_: &str, what: &str) -> ChangeError {
    ChangeError::new(
        "INSECURE_AUTH",
        format!(
            "{where_} asked for {what}, which sends the password itself; without tls.mode verify-full the \
             password is only proven, never sent (verify the server, or give the account \
             mysql_native_password or a cached caching_sha2_password)"
        ),
    )
}

async fn relay(
    mut client: TcpStream,
    mut upstream: TcpStream,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    where_: &str,
) -> Result<(), ChangeError> {
    let (seq, mut greeting) = read_packet(&mut upstream).await.map_err(io(where_))?;
    if greeting.first() == Some(&0xff) {
        // The server refuses the connection outright: let the driver report its error.
        write_packet(&mut client, seq, &greeting)
            .await
            .map_err(io(where_))?;
        return Ok(());
    }
    let Some(caps_at) = capability_offset(&greeting) else {
        return Err(ChangeError::new(
            "CONNECT",
            format!("{where_} did not send a MySQL protocol 10 handshake"),
        ));
    };
    if tls.is_some() {
        let caps = u16::from_le_bytes([greeting[caps_at], greeting[caps_at + 1]]) as u32;
        if caps & CLIENT_SSL == 0 {
            return Err(ChangeError::new(
                "TLS",
                format!("{where_} does not offer TLS and tls.mode is require"),
            ));
        }
        // The driver must not start TLS to the relay: the relay holds it toward the server.
        let cleared = (caps & !CLIENT_SSL) as u16;
        greeting[caps_at..caps_at + 2].copy_from_slice(&cleared.to_le_bytes());
    }
    write_packet(&mut client, seq, &greeting)
        .await
        .map_err(io(where_))?;
    let (cseq, mut response) = read_packet(&mut client).await.map_err(io(where_))?;
    if response.len() < 32 {
        return Err(ChangeError::new(
            "CONNECT",
            format!("the driver's handshake response to {where_} is too short"),
        ));
    }
    match tls {
        Some((cfg, name)) => {
            let mut caps = u32::from_le_bytes([response[0], response[1], response[2], response[3]]);
            caps |= CLIENT_SSL;
            response[..4].copy_from_slice(&caps.to_le_bytes());
            // The SSL request is the response's first 32 bytes: capabilities, packet size, charset, filler.
            write_packet(&mut upstream, cseq, &response[..32])
                .await
                .map_err(io(where_))?;
            let secure = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, upstream)
                .await
                .map_err(|e| ChangeError::new("TLS", format!("TLS with {where_}: {e}")))?;
            authenticate(client, secure, cseq.wrapping_add(1), response, 1, where_).await
        }
        None => authenticate(client, upstream, cseq, response, 0, where_).await,
    }
}

/// Sends the driver's handshake response, then relays the exchange with the checks, then bytes.
async fn authenticate<S>(
    client: TcpStream,
    mut server: S,
    seq: u8,
    response: Vec<u8>,
    shift: u8,
    where_: &str,
) -> Result<(), ChangeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    write_packet(&mut server, seq, &response)
        .await
        .map_err(io(where_))?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = tokio::io::split(server);
    let done = std::sync::atomic::AtomicBool::new(false);
    let from_server = async {
        loop {
            let (seq, packet) = read_packet(&mut sr).await.map_err(io(where_))?;
            judge(&packet).map_err(|what| refused(where_, &what))?;
            let end = matches!(packet.first(), Some(0x00) | Some(0xff));
            if end {
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            write_packet(&mut cw, seq.wrapping_sub(shift), &packet)
                .await
                .map_err(io(where_))?;
            if end {
                break;
            }
        }
        tokio::io::copy(&mut sr, &mut cw)
            .await
            .map_err(io(where_))?;
        let _ = cw.shutdown().await;
        Ok::<(), ChangeError>(())
    };
    let from_client = async {
        loop {
            let mut head = [0u8; 4];
            match cr.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io(where_)(e)),
            }
            let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
            let mut payload = vec![0u8; len];
            cr.read_exact(&mut payload).await.map_err(io(where_))?;
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                // The first command: sequence numbers restart at 0 in each command, nothing to shift.
                write_packet(&mut sw, head[3], &payload)
                    .await
                    .map_err(io(where_))?;
                tokio::io::copy(&mut cr, &mut sw)
                    .await
                    .map_err(io(where_))?;
                break;
            }
            write_packet(&mut sw, head[3].wrapping_add(shift), &payload)
                .await
                .map_err(io(where_))?;
        }
        let _ = sw.shutdown().await;
        Ok::<(), ChangeError>(())
    };
    tokio::try_join!(from_server, from_client).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_the_server_requests() {
        assert!(judge(b"\xfemysql_native_password\0abcdefgh").is_ok());
        assert!(judge(b"\xfecaching_sha2_password\0abc").is_ok());
        assert!(judge(b"\xfeclient_ed25519\0abc").is_ok());
        assert!(judge(b"\x01\x03").is_ok());
        assert!(judge(b"\x00\x00\x00\x02\x00").is_ok());
        assert!(
            judge(b"\x01\x04")
                .unwrap_err()
                .contains("full authentication")
        );
        assert!(
            judge(b"\xfemysql_clear_password\0")
                .unwrap_err()
                .contains("mysql_clear_password")
        );
        assert!(judge(b"\xfesha256_password\0x").is_err());
        assert!(judge(b"\xfedialog\0x").is_err());
        assert!(judge(b"\xfe").is_err());
    }

    #[test]
    fn the_capability_offset_of_a_greeting() {
        let mut g = vec![10u8];
        g.extend_from_slice(b"10.11.6-MariaDB\0");
        g.extend_from_slice(&[1, 0, 0, 0]);
        g.extend_from_slice(b"abcdefgh");
        g.push(0);
        g.extend_from_slice(&[0xff, 0xf7]);
        let at = capability_offset(&g).unwrap();
        assert_eq!(&g[at..at + 2], &[0xff, 0xf7]);
        assert_eq!(capability_offset(&g[..g.len() - 1]), None);
        assert_eq!(capability_offset(b"\x09abc\0"), None);
    }
}
