//! The AK/SK Authorization header parser and the canonical request builder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_rotator_store::protocol::signer;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(a) = signer::parse_authorization(&s) {
        assert!(!a.access.is_empty());
        assert_eq!(a.signature.len(), 64);
        let cr = signer::canonical_request("POST", &s, Some(&s), &a.signed_headers, |_| Some("v"), data);
        let _ = signer::sign(data, &s, &cr);
    }
    let uri = signer::canonical_uri(&s);
    assert!(uri.ends_with('/'));
    let _ = signer::canonical_query(Some(&s));
    let _ = signer::parse_date(&s);
});
