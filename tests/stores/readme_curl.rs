//! Runs the README's curl examples, as written and in order, against the real `serve` binary.

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn every_curl_example_in_the_readme_works() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- curl-examples:start -->")
        .expect("the curl examples are marked");
    let end = readme
        .find("<!-- curl-examples:end -->")
        .expect("the curl examples end");
    let examples: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(examples.len() >= 15, "found {} examples", examples.len());
    assert!(
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "curl is missing: run scripts/testenv install"
    );

    let dir = crate::support::operator::serve_dir("demo-token-0123456789abcdef", "demo-project");
    let (mut server, port) = crate::support::operator::serve_command(dir.path());
    let mut server = server
        .arg("--simulated-databases")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!((0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let mut outputs = Vec::new();
    for ex in &examples {
        let out = Command::new("bash")
            .args(["-c", ex])
            .env("CSMS", format!("http://127.0.0.1:{port}/v1/demo-project"))
            .env("H", "X-Auth-Token: demo-token-0123456789abcdef")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "{ex}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json_ok = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        assert!(json_ok || text == "204", "{ex}\nanswered: {text}");
        outputs.push(text);
    }
    let _ = server.kill();
    let _ = server.wait();
    let all = outputs.join("\n");
    // The only error answer is the COMMON rotation's (below).
    assert_eq!(
        all.matches(r#""error":{"error_code""#).count(),
        1,
        "an example failed:\n{all}"
    );
    let rotate = outputs
        .iter()
        .find(|o| o.contains("rotation_task_id"))
        .expect("a rotate answer");
    assert!(rotate.contains("\"version_id\":\"v2\""), "{rotate}");
    assert_eq!(
        all.matches("CSMS.0002").count(),
        1,
        "the COMMON rotation is refused once:\n{all}"
    );
    assert_eq!(outputs.iter().filter(|o| *o == "204").count(), 2, "{all}");
}
