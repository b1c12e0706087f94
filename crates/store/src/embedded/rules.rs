//! CSMS's rules for what a request may hold: names, projects, stages, secret types, values.

use super::*;

pub(super) fn validate_name(name: &str) -> StoreResult<()> {
    SecretName::parse(name)
        .map(|_| ())
        .map_err(|e| StoreError::invalid("name", e.to_string()))
}

pub(super) fn validate_project(project: &str) -> StoreResult<()> {
    if project.is_empty()
        || project.len() > 64
        || !project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(StoreError::invalid(
            "project_id",
            "a project id is 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    Ok(())
}

pub(super) fn validate_stages(stages: &[String]) -> StoreResult<()> {
    if stages.len() > 12 {
        return Err(StoreError::invalid("version_stages", "at most 12 stages"));
    }
    for s in stages {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(StoreError::invalid(
                "version_stages",
                "a stage is 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if s == SYSPENDING || s == SYSPREVIOUS {
            return Err(StoreError::invalid(
                "version_stages",
                format!("{s} is managed by the store and cannot be set directly"),
            ));
        }
    }
    Ok(())
}

pub(super) fn secret_type_of(t: Option<&str>) -> StoreResult<String> {
    match t.unwrap_or("COMMON") {
        "" | "COMMON" => Ok("COMMON".to_owned()),
        "RDS-FG" => Ok("RDS-FG".to_owned()),
        "GaussDB-FG" => Ok("GaussDB-FG".to_owned()),
        other => Err(StoreError::invalid(
            "secret_type",
            format!(
                "{:?} is not one of COMMON, RDS-FG, GaussDB-FG",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// The value and kind of a create request; exactly one of string and binary.
pub(super) fn value_of(
    secret_string: Option<SecretValue>,
    secret_binary: Option<SecretValue>,
) -> StoreResult<(SecretValue, ValueKind)> {
    match (secret_string, secret_binary) {
        (Some(s), None) => Ok((s, ValueKind::String)),
        (None, Some(b)) => Ok((b, ValueKind::Binary)),
        (None, None) => Err(StoreError::invalid(
            "secret_string",
            "one of secret_string and secret_binary is required",
        )),
        (Some(_), Some(_)) => Err(StoreError::invalid(
            "secret_binary",
            "give secret_string or secret_binary, not both",
        )),
    }
}

pub(super) const MAX_VALUE_BYTES: usize = 32 * 1024;
