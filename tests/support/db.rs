//! Throwaway PostgreSQL and MariaDB servers on free loopback ports, with password authentication, as
//! root where CI runs as root. Stopped when dropped.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use secret_rotator::api::{DatabaseEngine, TlsMode};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::database::Connection;

pub const ADMIN_PASSWORD: &str = "admin-Pw-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn need(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: run `scripts/testenv install` (it installs postgresql and mariadb-server)"
    );
    p
}

/// A PostgreSQL server.
pub struct Postgres {
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
}

fn as_postgres(cmd: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

impl Postgres {
    /// initdb with scram-sha-256 and `log_statement = all`, then start.
    pub fn start() -> Postgres {
        let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        need("/usr/lib/postgresql/15/bin/initdb");
        let dir = tempfile::Builder::new().prefix("sr-pg-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "admin", "--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Postgres {
            port: free_port(),
            dir,
            bin,
        };
        pg.start_server();
        pg
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pg.log")
    }

    /// Starts (or restarts) the server on its port.
    pub fn start_server(&self) {
        let data = self.dir.path().join("data");
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c log_statement=all -c password_encryption=scram-sha-256",
                self.port,
                self.dir.path().display()
            ))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server now.
    pub fn stop_server(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    pub fn connection(&self, admin: bool) -> Connection {
        Connection {
            engine: DatabaseEngine::Postgresql,
            host: "127.0.0.1".into(),
            port: self.port,
            database: None,
            tls: TlsMode::Disable,
            ca_pem: None,
            admin: admin.then(|| {
                (
                    "admin".to_owned(),
                    SecretValue::from_str_value(ADMIN_PASSWORD),
                )
            }),
        }
    }

    /// Runs SQL as the administrator.
    pub async fn admin_sql(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=admin password={ADMIN_PASSWORD} dbname=postgres",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    }

    /// Whether `user` logs in with `password` over the Unix socket (as an application on the database's
    /// own host would).
    pub async fn login_local(&self, user: &str, password: &str) -> bool {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(self.dir.path())
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        match cfg.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    }

    /// Refuses `user`'s logins over TCP from 127.0.0.1 (a pg_hba rule ahead of the others); the socket
    /// still lets it in.
    pub async fn refuse_tcp_logins_of(&self, user: &str) {
        self.prepend_hba(&format!("host all {user} 127.0.0.1/32 reject"))
            .await;
    }

    /// Puts `line` ahead of the other pg_hba.conf rules and reloads.
    pub async fn prepend_hba(&self, line: &str) {
        let hba = self.dir.path().join("data/pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("{line}\n{old}")).unwrap();
        self.admin_sql("SELECT pg_reload_conf()").await;
    }

    /// Whether `user` logs in with `password`.
    pub async fn login(&self, user: &str, password: &str) -> bool {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        match cfg.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A MariaDB server.
pub struct Mariadb {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    extra: Vec<String>,
}

impl Mariadb {
    /// Installs a data directory and starts `mariadbd` with a root password.
    pub fn start() -> Mariadb {
        need("/usr/sbin/mariadbd");
        let dir = tempfile::Builder::new()
            .prefix("sr-maria-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            // Its own temporary directory: parallel installs collide in a shared /tmp.
            .arg(format!("--tmpdir={}", dir.path().display()));
        if is_root() {
            install.arg("--user=root");
        }
        let out = install.output().unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = Mariadb {
            port: free_port(),
            dir,
            child: None,
            extra: Vec::new(),
        };
        m.start_server();
        // Set the root password over the socket, then use TCP from here on.
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", m.dir.path().join("sock").display()))
            .args(["-uroot", "-e"])
            .arg(format!("ALTER USER 'root'@'localhost' IDENTIFIED BY '{ADMIN_PASSWORD}'; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setting the root password failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        m
    }

    /// Starts (or restarts) the server.
    pub fn start_server(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("err").display()))
            .arg(format!("--tmpdir={}", d.display()))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.arg("--user=root");
        }
        self.child = Some(cmd.spawn().unwrap());
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && d.join("sock").exists()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "mariadbd did not start: {}",
            std::fs::read_to_string(d.join("err")).unwrap_or_default()
        );
    }

    /// Stops the server now (SIGKILL).
    pub fn stop_server(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("sock"));
    }

    pub fn connection(&self, admin: bool) -> Connection {
        Connection {
            engine: DatabaseEngine::Mysql,
            host: "127.0.0.1".into(),
            port: self.port,
            database: None,
            tls: TlsMode::Disable,
            ca_pem: None,
            admin: admin.then(|| {
                (
                    "root".to_owned(),
                    SecretValue::from_str_value(ADMIN_PASSWORD),
                )
            }),
        }
    }

    fn opts(&self, user: &str, password: &str) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .into()
    }

    /// Runs SQL as root.
    pub async fn admin_sql(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(self.opts("root", ADMIN_PASSWORD))
            .await
            .unwrap();
        c.query_drop(sql).await.unwrap();
        let _ = c.disconnect().await;
    }

    /// Whether `user` logs in with `password`.
    pub async fn login(&self, user: &str, password: &str) -> bool {
        use mysql_async::prelude::Queryable;
        match tokio::time::timeout(
            Duration::from_secs(5),
            mysql_async::Conn::new(self.opts(user, password)),
        )
        .await
        {
            Ok(Ok(mut c)) => {
                let r: Result<Option<i64>, _> = c.query_first("SELECT 1").await;
                let _ = c.disconnect().await;
                r.is_ok()
            }
            _ => false,
        }
    }

    /// Whether `user` logs in with `password` over the Unix socket (as `user`@`localhost`).
    pub async fn login_local(&self, user: &str, password: &str) -> bool {
        use mysql_async::prelude::Queryable;
        let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.dir.path().join("sock").display().to_string()))
            .user(Some(user))
            .pass(Some(password))
            .into();
        match tokio::time::timeout(Duration::from_secs(5), mysql_async::Conn::new(opts)).await {
            Ok(Ok(mut c)) => {
                let r: Result<Option<i64>, _> = c.query_first("SELECT 1").await;
                let _ = c.disconnect().await;
                r.is_ok()
            }
            _ => false,
        }
    }

    /// A connection held open as `user`.
    pub async fn connect(&self, user: &str, password: &str) -> mysql_async::Conn {
        mysql_async::Conn::new(self.opts(user, password))
            .await
            .unwrap()
    }
}

impl Mariadb {
    /// A server that also accepts TLS, with a certificate for 127.0.0.1 from a fresh CA; returns the CA.
    pub fn start_tls() -> (Mariadb, Vec<u8>) {
        let mut m = Mariadb::start();
        m.stop_server();
        let (ca, crt, key) = make_certs(m.dir.path());
        m.extra = vec![
            format!("--ssl-cert={}", crt.display()),
            format!("--ssl-key={}", key.display()),
            format!("--ssl-ca={}", m.dir.path().join("ca.pem").display()),
        ];
        m.start_server();
        (m, ca)
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
/// Returns (ca.pem, server.crt path, server.key path).
pub fn make_certs(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=secret-rotator test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        std::fs::read(dir.join("ca.pem")).unwrap(),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

impl Postgres {
    /// A server that also accepts TLS, with a certificate for 127.0.0.1 from a fresh CA; returns the CA.
    pub fn start_tls() -> (Postgres, Vec<u8>) {
        let pg = Postgres::start();
        pg.stop_server();
        let data = pg.dir.path().join("data");
        let (ca, crt, key) = make_certs(pg.dir.path());
        std::fs::copy(&crt, data.join("server.crt")).unwrap();
        std::fs::copy(&key, data.join("server.key")).unwrap();
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status();
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write;
        writeln!(
            conf,
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
        )
        .unwrap();
        pg.start_server();
        (pg, ca)
    }
}

/// Applies a DatabaseServer `name` in `ns` for a local engine on 127.0.0.1 without TLS, allowing every
/// account: with the administrator Secret `admin` of `ns` (keys username and password), or without an
/// administrator.
pub async fn local_server(
    client: &kube::Client,
    ns: &str,
    name: &str,
    engine: &str,
    port: u16,
    admin: Option<&str>,
) {
    let admin = admin
        .map(|a| format!("\n  adminSecretRef: {{name: {a}}}"))
        .unwrap_or_default();
    let yaml = format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: DatabaseServer\nmetadata:\n  name: {name}\nspec:\n  engine: {engine}\n  host: 127.0.0.1\n  port: {port}\n  tls: {{mode: disable}}\n  accounts: ['*']{admin}\n"
    );
    let obj: secret_rotator::api::DatabaseServer = serde_saphyr::from_str(&yaml).unwrap();
    kube::Api::<secret_rotator::api::DatabaseServer>::namespaced(client.clone(), ns)
        .patch(
            name,
            &kube::api::PatchParams::apply("secret-rotator-tests").force(),
            &kube::api::Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying DatabaseServer {ns}/{name}: {e}"));
}
