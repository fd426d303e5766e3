//! The `limit` of every list endpoint, parsed one way: absent is the endpoint's default; a
//! number from 1 up is taken, at most the endpoint's maximum; anything else (empty, 0, negative,
//! not a number) is a 400 `invalid_input` that says what is allowed.

use super::error::ApiError;

pub fn limit(text: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => whole_number(t)
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| ApiError::invalid("invalid_input", format!("limit must be a whole number from 1 to {max}"))),
    }
}

/// A query parameter that must be a whole number: digits only (no sign, no spaces), within i64.
pub fn whole_number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_list() {
        assert_eq!(limit(None, 50, 200).ok(), Some(50));
        assert_eq!(limit(Some("7"), 50, 200).ok(), Some(7));
        assert_eq!(limit(Some("5000"), 50, 200).ok(), Some(200), "clamped to the maximum");
        for bad in ["", " 7", "+7", "0", "-1", "x", "1.5", "9223372036854775808"] {
            assert!(limit(Some(bad), 50, 200).is_err(), "{bad:?}");
        }
    }
}
