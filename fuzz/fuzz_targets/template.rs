//! The synced Secret's template language: parse, and render with every variable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_rotator_core::template::Template;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(t) = Template::parse(&s) {
        let out = t.render(|v| if v == "password" { "P" } else { "x" });
        // Literal text survives: without placeholders the output is the input.
        if !s.contains("{{") {
            assert_eq!(out, s);
        }
        for v in t.variables() {
            assert!(secret_rotator_core::template::VARIABLES.contains(&v));
        }
    }
});
