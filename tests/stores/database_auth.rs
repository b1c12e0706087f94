//! A database host is chosen by the resource, so the server on the other end may be anyone's. Unless the
//! server is verified (`tls.mode: verify-full`), the operator never sends a password in clear or as MD5:
//! PostgreSQL gets SCRAM only (with channel binding over TLS), MySQL gets the password proven, never
//! sent (no caching_sha2 full authentication, no cleartext plugin).
//!
//! PostgreSQL is a real server whose pg_hba asks for `password` and `md5`. The MySQL side is a stand-in
//! server written here, because it plays the attacker: a real MariaDB does not ask for caching_sha2's full
//! authentication, which is the step that gives the password away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::db::Postgres;
use secret_rotator::api::TlsMode;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::database::{Connection, target};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `port` on loopback that records what clients send.
struct Capture {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    async fn start(port: u16) -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let record = record.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up = async move {
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            record.lock().unwrap().extend_from_slice(&buf[..n]);
                            if uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = uw.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut ur, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Capture { port: local, seen }
    }

    fn contains(&self, needle: &[u8]) -> bool {
        self.seen
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    }
}

/// Real PostgreSQL with one account on `password` (cleartext) and one on `md5`: without TLS and with TLS
/// `require` the operator refuses with INSECURE_AUTH before anything leaves; with `verify-full` it logs in.
/// The proxy between them shows that neither the password nor an MD5 answer was sent, and that a driver
/// without the guard would have sent the cleartext password on the same connection.
#[tokio::test]
async fn postgresql_sends_no_cleartext_or_md5_password_to_an_unverified_server() {
    let (pg, ca) = Postgres::start_tls();
    pg.admin_sql(
        "CREATE ROLE clear_user LOGIN PASSWORD 'clear-Pw-5s3cr3t';
         SET password_encryption = 'md5';
         CREATE ROLE hash_user LOGIN PASSWORD 'hash-Pw-5s3cr3t'",
    )
    .await;
    pg.prepend_hba(
        "host all clear_user 127.0.0.1/32 password\nhost all hash_user 127.0.0.1/32 md5",
    )
    .await;

    for (user, pw, method) in [
        ("clear_user", "clear-Pw-5s3cr3t", "cleartext"),
        ("hash_user", "hash-Pw-5s3cr3t", "MD5"),
    ] {
        let password = SecretValue::from_str_value(pw);
        // No TLS, through the recording proxy.
        let capture = Capture::start(pg.port).await;
        let mut conn: Connection = pg.connection(false);
        conn.port = capture.port;
        let e = target(conn).test_login(user, &password).await.unwrap_err();
        assert_eq!(e.code, "INSECURE_AUTH", "{e:?}");
        assert!(e.message.contains(method), "{user}: {e:?}");
        assert!(e.message.contains("verify-full"), "{user}: {e:?}");
        assert!(!e.message.contains(pw), "{e:?}");
        assert!(
            capture.contains(user.as_bytes()),
            "the proxy saw the startup"
        );
        assert!(!capture.contains(pw.as_bytes()), "{user}: password sent");
        assert!(!capture.contains(b"md5"), "{user}: an MD5 answer was sent");

        // TLS without verification: SCRAM with channel binding or nothing.
        let mut conn = pg.connection(false);
        conn.tls = TlsMode::Require;
        let e = target(conn).test_login(user, &password).await.unwrap_err();
        assert_eq!(e.code, "INSECURE_AUTH", "{e:?}");
        assert!(e.message.contains("channel binding"), "{user}: {e:?}");
        assert!(e.message.contains("verify-full"), "{user}: {e:?}");

        // A verified server gets what it asks for.
        let mut conn = pg.connection(false);
        conn.tls = TlsMode::VerifyFull;
        conn.ca_pem = Some(ca.clone());
        target(conn).test_login(user, &password).await.unwrap();
    }

    // The recording proxy can see a leak: the bare driver, without the guard, sends the cleartext password.
    let capture = Capture::start(pg.port).await;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(capture.port)
        .user("clear_user")
        .password("clear-Pw-5s3cr3t")
        .dbname("postgres");
    let (_client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    assert!(capture.contains(b"clear-Pw-5s3cr3t"));

    // SCRAM accounts are unaffected, with and without TLS (the administrator is one).
    for mode in [TlsMode::Disable, TlsMode::Require] {
        let mut conn = pg.connection(true);
        conn.tls = mode;
        let t = target(conn);
        t.test_login(
            "admin",
            &SecretValue::from_str_value(crate::support::db::ADMIN_PASSWORD),
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn read_packet(s: &mut (dyn Io + '_)) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    Some((head[3], p))
}

async fn write_packet(s: &mut (dyn Io + '_), seq: u8, payload: &[u8]) {
    let [a, b, c, _] = (payload.len() as u32).to_le_bytes();
    s.write_all(&[a, b, c, seq]).await.unwrap();
    s.write_all(payload).await.unwrap();
    s.flush().await.unwrap();
}

/// What the stand-in server asks for once it has the client's handshake response.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// caching_sha2_password's "perform full authentication" (`0x01 0x04`).
    FullAuth,
    /// A switch to the cleartext plugin.
    ClearSwitch,
}

/// A MySQL 8 stand-in that offers caching_sha2_password (and TLS when given a config), asks for `ask`,
/// then records what the client sends next; returns its port and the recording.
async fn fake_mysql(
    ask: Ask,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut s: Box<dyn Io> = Box::new(socket);
        let mut caps: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x8_0000 | 0x20_0000;
        if tls.is_some() {
            caps |= 0x800;
        }
        let mut g = vec![10u8];
        g.extend_from_slice(b"8.0.36-standin\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(0x21);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0u8; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"caching_sha2_password\0");
        write_packet(&mut *s, 0, &g).await;
        let Some((mut seq, mut p)) = read_packet(&mut *s).await else {
            return Vec::new();
        };
        let client_caps = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        if p.len() == 32 && client_caps & 0x800 != 0 {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone().expect("TLS offered"));
            let secure = acceptor.accept(s).await.unwrap();
            s = Box::new(secure);
            (seq, p) = read_packet(&mut *s).await.unwrap();
        }
        assert!(p.len() > 32, "a handshake response");
        let ask_packet: &[u8] = match ask {
            Ask::FullAuth => b"\x01\x04",
            Ask::ClearSwitch => b"\xfemysql_clear_password\0",
        };
        write_packet(&mut *s, seq.wrapping_add(1), ask_packet).await;
        // Whatever comes next, for two seconds or until the client hangs up.
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 1024];
        let mut answered = false;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !answered {
                // Let a client that sent something finish its login, as a thief would.
                answered = true;
                let next = seen.get(3).copied().unwrap_or(0).wrapping_add(1);
                write_packet(&mut *s, next, &[0, 0, 0, 2, 0, 0, 0]).await;
            }
        }
        seen
    });
    (port, task)
}

fn server_config(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let (ca, crt, key) = crate::support::db::make_certs(dir);
    let certs = rustls_pemfile::certs(&mut &std::fs::read(crt).unwrap()[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &std::fs::read(key).unwrap()[..])
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (Arc::new(config), ca)
}

fn mysql_connection(port: u16, tls: TlsMode, ca_pem: Option<Vec<u8>>) -> Connection {
    Connection {
        engine: secret_rotator::api::DatabaseEngine::Mysql,
        host: "127.0.0.1".into(),
        port,
        database: None,
        tls,
        ca_pem,
        admin: None,
    }
}

/// MySQL: a server that asks for caching_sha2's full authentication, or switches to the cleartext plugin,
/// gets nothing more from the operator unless it is verified; then the password goes to it in clear, over
/// TLS, which shows that the stand-in sees what a thief would.
#[tokio::test]
async fn mysql_password_is_proven_never_sent_to_an_unverified_server() {
    secret_rotator_store::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (server_tls, ca) = server_config(dir.path());
    let password = SecretValue::from_str_value("mysql-Pw-5s3cr3t");

    for (ask, mode) in [
        (Ask::FullAuth, TlsMode::Disable),
        (Ask::ClearSwitch, TlsMode::Disable),
        (Ask::FullAuth, TlsMode::Require),
        (Ask::ClearSwitch, TlsMode::Require),
    ] {
        let tls = (mode == TlsMode::Require).then(|| server_tls.clone());
        let (port, seen) = fake_mysql(ask, tls).await;
        let e = target(mysql_connection(port, mode, None))
            .test_login("app", &password)
            .await
            .unwrap_err();
        assert_eq!(e.code, "INSECURE_AUTH", "{ask:?} {mode:?}: {e:?}");
        assert!(e.message.contains("verify-full"), "{e:?}");
        let seen = seen.await.unwrap();
        assert!(
            seen.is_empty(),
            "{ask:?} {mode:?}: the client sent {} more bytes",
            seen.len()
        );
    }

    // Verified: the driver trusts the server and sends the password itself, and the stand-in sees it.
    let (port, seen) = fake_mysql(Ask::FullAuth, Some(server_tls.clone())).await;
    let _ = target(mysql_connection(port, TlsMode::VerifyFull, Some(ca)))
        .test_login("app", &password)
        .await;
    let seen = seen.await.unwrap();
    assert!(
        seen.windows(16).any(|w| w == b"mysql-Pw-5s3cr3t"),
        "the stand-in did not see the password a verified server receives"
    );
}
