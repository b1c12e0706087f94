//! Password policies: the character classes of CSMS GenerateRandomPassword and the checks that a policy
//! can be met.

/// What a generated value is made of (the options of CSMS GenerateRandomPassword). The CRD's
/// `spec.password` and the REST API's generate-password body both convert into it, so a change to either
/// wire form cannot silently change the other's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Number of characters, 12 to 256.
    pub length: u32,
    /// Characters never used.
    pub exclude_characters: String,
    /// Use no lower-case letters.
    pub exclude_lowercase: bool,
    /// Use no upper-case letters.
    pub exclude_uppercase: bool,
    /// Use no digits.
    pub exclude_numbers: bool,
    /// Use no punctuation.
    pub exclude_punctuation: bool,
    /// Allow the space character.
    pub include_space: bool,
    /// Use at least one character of every included type.
    pub require_each_included_type: bool,
}

/// The default length of a generated value (CSMS's default too).
pub const DEFAULT_LENGTH: u32 = 32;

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            length: DEFAULT_LENGTH,
            exclude_characters: String::new(),
            exclude_lowercase: false,
            exclude_uppercase: false,
            exclude_numbers: false,
            exclude_punctuation: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

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

/// Generates a value by the policy, from the operating system's CSPRNG. Each included class contributes
/// at least one character when `requireEachIncludedType` is set; positions are shuffled uniformly.
pub fn generate(policy: &PasswordPolicy) -> Result<crate::secret_value::SecretValue, PolicyError> {
    use rand::seq::SliceRandom;
    use rand::{Rng, TryRngCore, rngs::OsRng};
    use zeroize::Zeroizing;

    let classes = classes(policy)?;
    let mut rng = OsRng.unwrap_err();
    let all: Vec<char> = classes
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .collect();
    let len = policy.length as usize;
    let mut chars: Zeroizing<Vec<char>> = Zeroizing::new(Vec::with_capacity(len));
    if policy.require_each_included_type {
        for (_, class) in &classes {
            chars.push(class[rng.random_range(0..class.len())]);
        }
    }
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    let s: Zeroizing<String> = Zeroizing::new(chars.iter().collect());
    Ok(crate::secret_value::SecretValue::from_str_value(&s))
}

#[cfg(test)]
mod generate_tests {
    use super::*;

    #[test]
    fn honours_the_policy() {
        let policy = PasswordPolicy {
            length: 16,
            exclude_characters: "aeiou01".to_owned(),
            exclude_punctuation: true,
            ..PasswordPolicy::default()
        };
        for _ in 0..500 {
            let v = generate(&policy).unwrap();
            let s = v.expose_str().unwrap();
            assert_eq!(s.chars().count(), 16);
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert!(!s.chars().any(|c| "aeiou01".contains(c)), "{s}");
            assert!(s.chars().any(|c| c.is_ascii_lowercase()));
            assert!(s.chars().any(|c| c.is_ascii_uppercase()));
            assert!(s.chars().any(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn single_class_and_space() {
        let policy = PasswordPolicy {
            length: 12,
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_punctuation: true,
            include_space: true,
            ..PasswordPolicy::default()
        };
        let s = generate(&policy).unwrap();
        let s = s.expose_str().unwrap();
        assert!(s.chars().all(|c| c.is_ascii_digit() || c == ' '));
        assert!(s.contains(' '));
    }

    #[test]
    fn values_differ_and_cover_the_alphabet() {
        let policy = PasswordPolicy::default();
        let mut seen = std::collections::HashSet::new();
        let mut chars = std::collections::HashSet::new();
        for _ in 0..200 {
            let v = generate(&policy).unwrap();
            let s = v.expose_str().unwrap().to_owned();
            chars.extend(s.chars());
            assert!(seen.insert(s), "a value repeated");
        }
        // 200 values of 32 characters over 94 symbols: every symbol appears with overwhelming probability.
        assert_eq!(chars.len(), 94);
    }
}
