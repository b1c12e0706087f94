//! Envelope encryption with AES-256-GCM.
//!
//! Each version gets a fresh 256-bit data key (DEK) that encrypts its value; the master key (KEK) wraps
//! the DEK. Both encryptions carry additional authenticated data naming the project, the secret and the
//! version, so a ciphertext moved to another place fails to decrypt. A key check value (32 zero bytes
//! sealed under the KEK) tells at open whether the master key is the store's.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::StoreError;
use secret_rotator_core::secret_value::SecretValue;

const NONCE_LEN: usize = 12;
const KCV_AAD: &[u8] = b"secret-rotator/v1\0kcv";

/// A 256-bit master key. Wiped on drop; `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.key_id())
    }
}

/// Where a sealed value belongs; bound into the ciphertext as additional data.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Project id.
    pub project: &'a str,
    /// Secret name.
    pub secret: &'a str,
    /// Version id.
    pub version: &'a str,
}

impl Binding<'_> {
    fn aad(&self, purpose: &str) -> Vec<u8> {
        format!(
            "secret-rotator/v1\0{}\0{}\0{}\0{}",
            self.project, self.secret, self.version, purpose
        )
        .into_bytes()
    }
}

/// A value sealed under a data key, and the data key wrapped under the master key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    /// nonce ‖ AES-GCM(KEK, DEK).
    #[serde(with = "b64")]
    pub wrapped_dek: Vec<u8>,
    /// nonce ‖ AES-GCM(DEK, value).
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, StoreError> {
    let mut b = Zeroizing::new([0u8; N]);
    OsRng
        .try_fill_bytes(b.as_mut())
        .map_err(|e| StoreError::internal("reading the OS random generator", e))?;
    Ok(b)
}

fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|e| StoreError::internal("AES key", e))?;
    let nonce_bytes = random::<NONCE_LEN>()?;
    let nonce =
        Nonce::try_from(&nonce_bytes[..]).map_err(|e| StoreError::internal("AES nonce", e))?;
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|e| StoreError::internal("AES-GCM encryption", e))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce_bytes[..]);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let nonce = Nonce::try_from(&sealed[..NONCE_LEN]).ok()?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[NONCE_LEN..],
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

impl MasterKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey {
            key: Zeroizing::new(bytes),
        }
    }

    /// A new random key.
    pub fn generate() -> Result<MasterKey, StoreError> {
        Ok(MasterKey {
            key: random::<32>()?,
        })
    }

    /// The base64 text of the key, as a key file holds it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.key.as_ref()))
    }

    /// Parses the base64 of 32 bytes (surrounding white space allowed).
    pub fn from_base64(text: &str, origin: &str) -> Result<MasterKey, StoreError> {
        let err = |message: &str| StoreError::MasterKey {
            path: origin.to_owned(),
            message: message.to_owned(),
        };
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| err("not base64: make one with `openssl rand -base64 32`"))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            err("must decode to exactly 32 bytes: make one with `openssl rand -base64 32`")
        })?;
        Ok(MasterKey::from_bytes(key))
    }

    /// Reads a key file.
    pub fn from_file(path: &std::path::Path) -> Result<MasterKey, StoreError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| StoreError::MasterKey {
                    path: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                })?,
            );
        MasterKey::from_base64(&text, &path.display().to_string())
    }

    /// A public id of the key (16 hex digits of an HMAC under it): names the key, reveals nothing.
    pub fn key_id(&self) -> String {
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        match <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()) {
            Ok(mut mac) => {
                mac.update(b"secret-rotator key id");
                hex::encode(&mac.finalize().into_bytes()[..8])
            }
            Err(_) => String::new(),
        }
    }

    /// A 32-byte key derived from this one for another purpose (HMAC-SHA256 of the purpose).
    pub fn derive(&self, purpose: &str) -> Zeroizing<Vec<u8>> {
        match <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()) {
            Ok(mut mac) => {
                mac.update(purpose.as_bytes());
                Zeroizing::new(mac.finalize().into_bytes().to_vec())
            }
            Err(_) => Zeroizing::new(Vec::new()),
        }
    }

    /// The key check value stored with the data.
    pub fn key_check_value(&self) -> Result<Vec<u8>, StoreError> {
        seal_with(&self.key, KCV_AAD, &[0u8; 32])
    }

    /// Whether a stored key check value was made by this key.
    pub fn verify_key_check_value(&self, kcv: &[u8]) -> bool {
        open_with(&self.key, KCV_AAD, kcv).is_some_and(|p| p.as_slice() == [0u8; 32])
    }

    /// Seals a value under a fresh data key wrapped by this key.
    pub fn seal(&self, binding: Binding<'_>, value: &SecretValue) -> Result<Sealed, StoreError> {
        let dek = random::<32>()?;
        let ciphertext = seal_with(&dek, &binding.aad("value"), value.expose())?;
        let wrapped_dek = seal_with(&self.key, &binding.aad("dek"), dek.as_ref())?;
        Ok(Sealed {
            wrapped_dek,
            ciphertext,
        })
    }

    fn unwrap_dek(
        &self,
        binding: Binding<'_>,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let dek = open_with(&self.key, &binding.aad("dek"), wrapped).ok_or_else(|| {
            StoreError::internal(
                format!(
                    "unwrapping the data key of {}/{} {}",
                    binding.project, binding.secret, binding.version
                ),
                "authentication failed (wrong key or moved ciphertext)",
            )
        })?;
        let arr: [u8; 32] = dek
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::internal("unwrapping a data key", "wrong length"))?;
        Ok(Zeroizing::new(arr))
    }

    /// Opens a sealed value.
    pub fn open(&self, binding: Binding<'_>, sealed: &Sealed) -> Result<SecretValue, StoreError> {
        let dek = self.unwrap_dek(binding, &sealed.wrapped_dek)?;
        let plain =
            open_with(&dek, &binding.aad("value"), &sealed.ciphertext).ok_or_else(|| {
                StoreError::internal(
                    format!(
                        "decrypting {}/{} {}",
                        binding.project, binding.secret, binding.version
                    ),
                    "authentication failed (damaged or moved ciphertext)",
                )
            })?;
        Ok(SecretValue::new(plain.to_vec()))
    }

    /// Re-wraps a data key from this key to `new`, leaving the value's ciphertext as it is.
    pub fn rewrap(
        &self,
        new: &MasterKey,
        binding: Binding<'_>,
        sealed: &Sealed,
    ) -> Result<Sealed, StoreError> {
        let dek = self.unwrap_dek(binding, &sealed.wrapped_dek)?;
        Ok(Sealed {
            wrapped_dek: seal_with(&new.key, &binding.aad("dek"), dek.as_ref())?,
            ciphertext: sealed.ciphertext.clone(),
        })
    }
}

/// Raw AES-256-GCM decryption of one message, for the benchmark's baseline.
pub fn raw_decrypt_for_bench(key: &[u8; 32], sealed: &[u8]) -> Option<usize> {
    open_with(key, b"", sealed).map(|p| p.len())
}

/// Raw AES-256-GCM encryption of one message, for the benchmark's baseline.
pub fn raw_encrypt_for_bench(key: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    seal_with(key, b"", plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b<'a>(p: &'a str, s: &'a str, v: &'a str) -> Binding<'a> {
        Binding {
            project: p,
            secret: s,
            version: v,
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let k = MasterKey::generate().unwrap();
        let v = SecretValue::from_str_value("the value");
        let sealed = k.seal(b("p", "s", "v1"), &v).unwrap();
        assert_eq!(k.open(b("p", "s", "v1"), &sealed).unwrap(), v);
        // Moved to another version, secret or project: refused.
        assert!(k.open(b("p", "s", "v2"), &sealed).is_err());
        assert!(k.open(b("p", "t", "v1"), &sealed).is_err());
        assert!(k.open(b("q", "s", "v1"), &sealed).is_err());
        // Another key: refused.
        let other = MasterKey::generate().unwrap();
        assert!(other.open(b("p", "s", "v1"), &sealed).is_err());
        // A flipped bit: refused.
        let mut bad = sealed.clone();
        bad.ciphertext[20] ^= 1;
        assert!(k.open(b("p", "s", "v1"), &bad).is_err());
        // The plaintext is not in the ciphertext.
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"the value"));
    }

    #[test]
    fn fresh_data_key_per_seal() {
        let k = MasterKey::generate().unwrap();
        let v = SecretValue::from_str_value("same");
        let a = k.seal(b("p", "s", "v1"), &v).unwrap();
        let c = k.seal(b("p", "s", "v1"), &v).unwrap();
        assert_ne!(a.wrapped_dek, c.wrapped_dek);
        assert_ne!(a.ciphertext, c.ciphertext);
    }

    #[test]
    fn key_check_value_and_rewrap() {
        let k = MasterKey::generate().unwrap();
        let n = MasterKey::generate().unwrap();
        let kcv = k.key_check_value().unwrap();
        assert!(k.verify_key_check_value(&kcv));
        assert!(!n.verify_key_check_value(&kcv));
        let v = SecretValue::from_str_value("x");
        let sealed = k.seal(b("p", "s", "v1"), &v).unwrap();
        let re = k.rewrap(&n, b("p", "s", "v1"), &sealed).unwrap();
        assert_eq!(re.ciphertext, sealed.ciphertext);
        assert_eq!(n.open(b("p", "s", "v1"), &re).unwrap(), v);
        assert!(k.open(b("p", "s", "v1"), &re).is_err());
        assert_ne!(k.key_id(), n.key_id());
        assert!(!format!("{k:?}").contains(k.to_base64().as_str()));
    }

    #[test]
    fn key_file_text() {
        let k = MasterKey::generate().unwrap();
        let back = MasterKey::from_base64(&format!("{}\n", k.to_base64().as_str()), "f").unwrap();
        assert_eq!(back.key_id(), k.key_id());
        assert!(MasterKey::from_base64("c2hvcnQ=", "f").is_err());
        assert!(MasterKey::from_base64("not base64!", "f").is_err());
    }
}
