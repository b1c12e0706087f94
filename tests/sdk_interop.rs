//! The official Huawei Cloud Python SDK (`huaweicloudsdkcsms`, AK/SK signing) against the real
//! `secret-rotator serve` binary over HTTP.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn python() -> PathBuf {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testenv"))
        .arg("venv")
        .output()
        .expect("scripts/testenv venv");
    let venv = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let py = venv.join("bin/python");
    assert!(
        py.is_file()
            && Command::new(&py)
                .args(["-c", "import huaweicloudsdkcsms"])
                .status()
                .is_ok_and(|s| s.success()),
        "the Huawei Cloud Python SDK is missing from {}: run `scripts/testenv install`",
        venv.display()
    );
    py
}

#[test]
fn the_official_python_sdk_works_against_serve() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(
        &key,
        secret_rotator::store::embedded::crypto::MasterKey::generate()
            .unwrap()
            .to_base64()
            .as_bytes(),
    )
    .unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, "access_keys:\n- ak: SDKTESTAK\n  sk: sdk-test-secret-key-0123456789\n  projects: [sdkproject]\n").unwrap();
    for f in [&key, &auth] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--simulated-databases",
        ])
        .arg("--store-path")
        .arg(dir.path().join("store.redb"))
        .arg("--master-key-file")
        .arg(&key)
        .arg("--auth-file")
        .arg(&auth)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting serve");
    let url = format!("http://127.0.0.1:{port}");
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start");
    let out = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/interop.py"))
        .env("CSMS_ENDPOINT", &url)
        .env("CSMS_PROJECT", "sdkproject")
        .env("CSMS_AK", "SDKTESTAK")
        .env("CSMS_SK", "sdk-test-secret-key-0123456789")
        .output()
        .expect("running the SDK script");
    let _ = server.kill();
    let _ = server.wait();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sdk interop: all steps passed"),
        "SDK script failed:\n{stdout}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok: ").count(), 15, "{stdout}");
    // Neither the secret key nor the values reach the server's log.
    for needle in [
        "sdk-test-secret-key-0123456789",
        "first-value",
        "second-value",
        "initial-pw",
        "signed-value",
        "forged-value",
    ] {
        assert!(!log.contains(needle), "the server log contains {needle}");
    }
}
