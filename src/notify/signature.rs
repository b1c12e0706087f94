//! The signature of a notification request: HMAC-SHA256, keyed with `--notify-hmac-key-file`'s bytes, over
//! `<timestamp>.<body>`, where `<timestamp>` is the `X-Secret-Rotator-Timestamp` header (Unix seconds of
//! this delivery attempt) and `<body>` the exact request body. The header
//! `X-Secret-Rotator-Signature: sha256=<lowercase hex>` carries it. A receiver recomputes it, compares in
//! constant time, refuses a timestamp too far from its clock (a captured request cannot be replayed
//! later), and drops an event `id` it has already accepted (a retry of a delivery it answered too late).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "X-Secret-Rotator-Signature";
/// The header with the signed timestamp (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Secret-Rotator-Timestamp";
/// The prefix of the signature header's value.
pub const SCHEME: &str = "sha256=";

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a whole number of seconds.
    #[error("the timestamp is not Unix seconds")]
    BadTimestamp,
    /// The timestamp is further from now than allowed.
    #[error("the timestamp is {0} s from now, more than allowed")]
    Stale(i64),
    /// The signature header is not `sha256=<64 hex digits>`.
    #[error("the signature is not sha256=<hex>")]
    BadSignature,
    /// The signature does not match the body.
    #[error("the signature does not match")]
    Mismatch,
}

/// The HMAC of `<timestamp>.<body>` (none only if the HMAC refused the key, which it never does: an HMAC
/// takes a key of any length).
fn mac(key: &[u8], timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, &timestamp.to_string(), body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{SCHEME}{tag}")
}

/// Verifies a request as a receiver would: the headers' values, the exact body, the receiver's clock
/// (`now`, Unix seconds) and how far (`tolerance_secs`) the timestamp may be from it.
pub fn verify(
    key: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.saturating_abs() > tolerance_secs {
        return Err(VerifyError::Stale(skew));
    }
    let tag = signature
        .trim()
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
        .filter(|t| t.len() == 32)
        .ok_or(VerifyError::BadSignature)?;
    mac(key, timestamp.trim(), body)
        .ok_or(VerifyError::Mismatch)?
        .verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"specversion":"1.0"}"#;

    #[test]
    fn matches_an_independent_hmac() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'test-key',
        //   b'1764244800.{\"specversion\":\"1.0\"}', hashlib.sha256).hexdigest())"
        assert_eq!(
            sign(b"test-key", 1_764_244_800, BODY),
            "sha256=a5b9d146af12bec5365bf5557005837680aa77cbeaad0040e4c44e2ddf1c6817"
        );
    }

    #[test]
    fn verification_checks_key_body_timestamp_and_age() {
        let key = b"k\x00\xffbinary";
        let sig = sign(key, 1000, BODY);
        assert_eq!(verify(key, "1000", &sig, BODY, 1100, 300), Ok(()));
        assert_eq!(verify(key, "1000", &sig, BODY, 900, 300), Ok(()));
        assert_eq!(
            verify(b"other", "1000", &sig, BODY, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(key, "1000", &sig, br#"{"specversion":"1.1"}"#, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is signed: moving it forward to look fresh breaks the signature.
        assert_eq!(
            verify(key, "1400", &sig, BODY, 1400, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(key, "1000", &sig, BODY, 1301, 300),
            Err(VerifyError::Stale(301))
        );
        assert_eq!(
            verify(key, "soon", &sig, BODY, 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(key, "1000", &sig[7..], BODY, 1000, 300),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(key, "1000", "sha256=abcd", BODY, 1000, 300),
            Err(VerifyError::BadSignature)
        );
    }
}
