//! Durations as the CRD writes them: a positive integer and one unit, `s`, `m`, `h` or `d`.

use std::time::Duration;

/// The longest duration accepted anywhere: ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is not `<integer><s|m|h|d>`.
    #[error(
        "{input:?} is not a duration: write a positive integer and a unit s, m, h or d, for example 30d or 12h"
    )]
    Syntax {
        /// The refused text.
        input: String,
    },
    /// The value is zero.
    #[error("{input:?} is zero: a duration must be positive")]
    Zero {
        /// The refused text.
        input: String,
    },
    /// The value exceeds [`MAX_DURATION`].
    #[error("{input:?} is longer than the maximum of 3650d")]
    TooLong {
        /// The refused text.
        input: String,
    },
}

/// Parses `30d`, `12h`, `90m`, `45s`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax {
        input: input.to_owned(),
    };
    let unit = input.chars().last().ok_or_else(syntax)?;
    let digits = &input[..input.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let n: u64 = digits.parse().map_err(|_| syntax())?;
    let scale: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(syntax()),
    };
    if n == 0 {
        return Err(DurationError::Zero {
            input: input.to_owned(),
        });
    }
    let secs = n.checked_mul(scale).ok_or_else(|| DurationError::TooLong {
        input: input.to_owned(),
    })?;
    let d = Duration::from_secs(secs);
    if d > MAX_DURATION {
        return Err(DurationError::TooLong {
            input: input.to_owned(),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "d",
            "30",
            "30x",
            "-1d",
            "1.5h",
            " 1h",
            "1h ",
            "1H",
            "1hh",
            "٣d",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            parse_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_duration("3651d"),
            Err(DurationError::TooLong { .. })
        ));
        assert!(matches!(
            parse_duration("999999999999h"),
            Err(DurationError::TooLong { .. })
        ));
    }
}
