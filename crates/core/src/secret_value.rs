//! A secret value: zeroized when dropped, never printed by `Debug` or `Display`.

use zeroize::{Zeroize, Zeroizing};

/// Bytes of a secret. `Debug` prints only the length; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(Zeroizing::new(bytes))
    }

    /// Copies a string.
    pub fn from_str_value(s: &str) -> SecretValue {
        SecretValue::new(s.as_bytes().to_vec())
    }

    /// The bytes. Call sites that expose a value should be few and obvious.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.0.len())
    }
}

impl From<String> for SecretValue {
    fn from(mut s: String) -> SecretValue {
        let v = SecretValue::new(s.as_bytes().to_vec());
        s.zeroize();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let v = SecretValue::from_str_value("hunter2-very-secret");
        let d = format!("{v:?} {:?}", Some(&v));
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("19 bytes redacted"));
        assert_eq!(v.expose_str(), Some("hunter2-very-secret"));
    }
}
