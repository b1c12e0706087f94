//! Password policies: the character classes of CSMS GenerateRandomPassword and the checks that a policy
//! can be met.

use crate::api::PasswordPolicy;

/// Lower-case letters.
pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// Upper-case letters.
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Digits.
pub const NUMBERS: &str = "0123456789";
/// Punctuation, as CSMS uses it.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// The space character.
pub const SPACE: &str = " ";

/// Why a password policy cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Every character class is excluded.
    #[error("the policy excludes every character class")]
    NoClasses,
    /// An included class has no character left after `excludeCharacters`.
    #[error("excludeCharacters removes every character of the included class {class}")]
    EmptyClass {
        /// The class name.
        class: &'static str,
    },
    /// Too short to hold one character of each required class.
    #[error(
        "length {length} is shorter than the {classes} included classes that requireEachIncludedType asks for"
    )]
    TooShort {
        /// The policy's length.
        length: u32,
        /// How many classes are required.
        classes: usize,
    },
    /// Out of the 12..=256 range.
    #[error("length {length} is outside 12..256")]
    Length {
        /// The policy's length.
        length: u32,
    },
}

/// The included character classes of a policy, each with excluded characters removed.
pub fn classes(policy: &PasswordPolicy) -> Result<Vec<(&'static str, Vec<char>)>, PolicyError> {
    if !(12..=256).contains(&policy.length) {
        return Err(PolicyError::Length {
            length: policy.length,
        });
    }
    let mut out = Vec::new();
    let candidates = [
        ("lowercase", LOWERCASE, !policy.exclude_lowercase),
        ("uppercase", UPPERCASE, !policy.exclude_uppercase),
        ("numbers", NUMBERS, !policy.exclude_numbers),
        ("punctuation", PUNCTUATION, !policy.exclude_punctuation),
        ("space", SPACE, policy.include_space),
    ];
    for (name, chars, included) in candidates {
        if !included {
            continue;
        }
        let kept: Vec<char> = chars
            .chars()
            .filter(|c| !policy.exclude_characters.contains(*c))
            .collect();
        if kept.is_empty() {
            return Err(PolicyError::EmptyClass { class: name });
        }
        out.push((name, kept));
    }
    if out.is_empty() {
        return Err(PolicyError::NoClasses);
    }
    if policy.require_each_included_type && out.len() > policy.length as usize {
        return Err(PolicyError::TooShort {
            length: policy.length,
            classes: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_has_four_classes() {
        let c = classes(&PasswordPolicy::default()).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(
            c.iter().map(|(_, v)| v.len()).sum::<usize>(),
            26 + 26 + 10 + 32
        );
    }

    #[test]
    fn refuses_impossible_policies() {
        let none = PasswordPolicy {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(classes(&none), Err(PolicyError::NoClasses));
        let empty_digits = PasswordPolicy {
            exclude_characters: NUMBERS.to_owned(),
            ..PasswordPolicy::default()
        };
        assert_eq!(
            classes(&empty_digits),
            Err(PolicyError::EmptyClass { class: "numbers" })
        );
        let short = PasswordPolicy {
            length: 4,
            ..PasswordPolicy::default()
        };
        assert_eq!(classes(&short), Err(PolicyError::Length { length: 4 }));
    }

    #[test]
    fn excluded_characters_are_removed() {
        let p = PasswordPolicy {
            exclude_characters: "abc0'\"\\".to_owned(),
            ..PasswordPolicy::default()
        };
        let c = classes(&p).unwrap();
        for (_, chars) in &c {
            for ch in "abc0'\"\\".chars() {
                assert!(!chars.contains(&ch));
            }
        }
    }
}
