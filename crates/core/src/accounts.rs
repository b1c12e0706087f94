//! Account names: the built-in superusers no tenant may rotate, and the `*` pattern of allow-lists.

/// Built-in superusers of PostgreSQL, MySQL and MariaDB: rotating one through a tenant's resource would
/// hand the tenant the server.
pub const SUPERUSERS: &[&str] = &[
    "postgres",
    "root",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
    "mariadb.sys",
    "debian-sys-maint",
    "rdsadmin",
    "azure_superuser",
];

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters except a dot: `app_*` matches
/// `app_orders` but not `app_x.other`, so a pattern never reaches across a dot into a name of another
/// shape.
pub fn glob_in_segment(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => {
                let mut i = 0;
                loop {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i == n.len() || n[i] == b'.' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_stays_within_a_dot_separated_segment() {
        assert!(glob_in_segment("app_*", "app_orders"));
        assert!(glob_in_segment("*", "orders_app"));
        assert!(glob_in_segment("exact", "exact"));
        assert!(!glob_in_segment("exact", "exactly"));
        assert!(!glob_in_segment("app_*", "app_x.other"));
        assert!(!glob_in_segment("*", "mysql.sys"));
        assert!(glob_in_segment("mysql.*", "mysql.sys"));
        assert!(!glob_in_segment("10.0.*", "10.0.0.1"));
        assert!(glob_in_segment("a*b*c", "aXbYc"));
        assert!(!glob_in_segment("a*b*c", "aXbY"));
    }
}
