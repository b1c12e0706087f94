//! Capped exponential backoff with jitter after failed rotations.

use std::time::Duration;

/// The first retry delay.
pub const BASE: Duration = Duration::from_secs(10);
/// The longest delay.
pub const CAP: Duration = Duration::from_secs(600);

/// The delay before attempt `failures + 1`: `BASE * 2^(failures-1)`, capped, then scaled by a jitter
/// factor in [0.8, 1.2) taken from `jitter` in [0, 1).
pub fn delay(failures: u32, jitter: f64) -> Duration {
    delay_from(BASE, failures, jitter)
}

/// [`delay`] from another first delay: `base * 2^(failures-1)`, capped at [`CAP`], jittered.
pub fn delay_from(base: Duration, failures: u32, jitter: f64) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = base.saturating_mul(1u32 << (failures - 1).min(20));
    let capped = exp.min(CAP);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 0.999_999);
    capped.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_with_bounded_jitter() {
        assert_eq!(delay(0, 0.5), Duration::ZERO);
        assert_eq!(delay(1, 0.5), Duration::from_secs(10));
        assert_eq!(delay(2, 0.5), Duration::from_secs(20));
        assert_eq!(delay(4, 0.5), Duration::from_secs(80));
        assert_eq!(delay(30, 0.5), CAP);
        assert_eq!(delay(1, 0.0), Duration::from_secs(8));
        assert!(delay(1, 0.999) < Duration::from_secs(12));
        assert!(delay(u32::MAX, 1.0) <= CAP.mul_f64(1.2));
    }
}
