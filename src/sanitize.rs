//! Text from a peer (a database server, CSMS, an HTTP sink) as it may appear in a status, an event or a
//! log line: control characters escaped (no terminal escape sequence reaches `kubectl`), length bounded.

/// `s` with every control character written as `\u{..}` and at most `max` characters (then `…`).
pub fn text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 8);
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_bounds_the_length() {
        assert_eq!(text("plain", 10), "plain");
        assert_eq!(text("a\u{1b}[31mred", 20), "a\\u{1b}[31mred");
        assert_eq!(text("line\nbreak", 20), "line\\u{a}break");
        assert_eq!(text("abcdef", 3), "abc…");
        assert_eq!(text("ééé", 2), "éé…");
    }
}
