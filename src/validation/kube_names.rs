//! Kubernetes' rules for label and annotation keys and label values, which the apiserver would otherwise
//! refuse only when the synced Secret is written.

/// Kubernetes' limit on all annotations of one object together.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

fn name_part(s: &str, max: usize) -> Result<(), String> {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    if b.is_empty() || b.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    if !edge(&b[0]) || !edge(&b[b.len() - 1]) {
        return Err("must start and end with a letter or digit".into());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
        if !ok {
            return Err("the prefix must be a lowercase DNS subdomain".into());
        }
    }
    name_part(name, 63)
}

/// A label value: empty, or like a key's name part.
pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        name_part(v, 63)
    }
}

/// A Secret data key: letters, digits, '-', '_' or '.', at most 253.
pub fn secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A key or name cut to a readable length and quoted, for messages.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    format!("{out:?}")
}
