//! Secret records (stages, rotation configuration, the owner) are authenticated with the master key: each
//! record is its JSON followed by an HMAC-SHA256 of its table key and JSON, under a key derived from the
//! master key. Someone with write access to the store file but not the key cannot roll SYSCURRENT back or
//! change the MultiUser accounts: the store refuses the record, at open and at every read.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::crypto::MasterKey;

const MAC_LEN: usize = 32;

/// The key that authenticates records.
pub(super) fn record_key(master: &MasterKey) -> Zeroizing<Vec<u8>> {
    master.derive("secret-rotator secret record mac")
}

fn mac(key: &[u8], table_key: &str, json: &[u8]) -> Option<[u8; MAC_LEN]> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    m.update(table_key.as_bytes());
    m.update(&[0]);
    m.update(json);
    Some(m.finalize().into_bytes().into())
}

/// The stored form of a record: its JSON and its MAC.
pub(super) fn seal(key: &[u8], table_key: &str, json: Vec<u8>) -> Vec<u8> {
    let tag = mac(key, table_key, &json).unwrap_or([0; MAC_LEN]);
    let mut out = json;
    out.extend_from_slice(&tag);
    out
}

/// The JSON of a stored record whose MAC holds; `None` when it was changed outside the store.
pub(super) fn open<'a>(key: &[u8], table_key: &str, stored: &'a [u8]) -> Option<&'a [u8]> {
    let split = stored.len().checked_sub(MAC_LEN)?;
    let (json, tag) = stored.split_at(split);
    let expected = mac(key, table_key, json)?;
    bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)).then_some(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_record_or_key_is_refused() {
        let key = [7u8; 32];
        let stored = seal(&key, "p\0a", br#"{"x":1}"#.to_vec());
        assert_eq!(open(&key, "p\0a", &stored), Some(&br#"{"x":1}"#[..]));
        assert_eq!(open(&key, "p\0b", &stored), None, "moved to another key");
        assert_eq!(
            open(&[8u8; 32], "p\0a", &stored),
            None,
            "another master key"
        );
        let mut tampered = stored.clone();
        tampered[5] ^= 1;
        assert_eq!(open(&key, "p\0a", &tampered), None);
        assert_eq!(open(&key, "p\0a", b"short"), None);
    }
}
