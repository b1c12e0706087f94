//! The name rule of a CSMS secret, in one place: the operator checks `spec.secretName` with it, and the
//! embedded store refuses other names with it.

/// A secret name that follows the rule: 1 to 64 letters, digits, '.', '_' or '-'.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

/// Why a name is not a secret name. Carries no part of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a secret name is 1 to {} letters, digits, '.', '_' or '-'",
    SecretName::MAX_LEN
)]
pub struct InvalidSecretName;

impl SecretName {
    /// The longest name CSMS accepts.
    pub const MAX_LEN: usize = 64;

    /// Checks `name` against the rule.
    pub fn parse(name: &str) -> Result<SecretName, InvalidSecretName> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if name.is_empty() || name.len() > Self::MAX_LEN || !name.bytes().all(allowed) {
            return Err(InvalidSecretName);
        }
        Ok(SecretName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in ["a", "shop.orders-db_1", &"x".repeat(64)] {
            assert_eq!(
                SecretName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in ["", "has space", "a/b", "ünï", &"x".repeat(65)] {
            assert_eq!(SecretName::parse(bad), Err(InvalidSecretName), "{bad:?}");
        }
    }
}
