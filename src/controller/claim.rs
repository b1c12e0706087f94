//! Which SecretRotation a store secret belongs to, and whether the spec still describes it. A store secret
//! outlives its resource (and its namespace): the owner's UID is recorded in the secret's description, so
//! a new resource with the same name cannot silently adopt the previous tenant's credentials.

use crate::api::SecretType;
use crate::validation::{Accounts, ValidatedSpec};
use secret_rotator_store::model::{DatabaseCredential, RotationConfig, Secret};

const UID_MARK: &str = "uid=";

/// The description the operator writes on a store secret it creates or claims.
pub fn description(namespace: &str, name: &str, uid: &str) -> String {
    format!("managed by secret-rotator for SecretRotation {namespace}/{name} {UID_MARK}{uid}")
}

/// The owner UID a description records, if any.
pub fn owner_uid(description: &str) -> Option<&str> {
    let rest = &description[description.rfind(UID_MARK)? + UID_MARK.len()..];
    let uid = rest.split_whitespace().next()?;
    (!uid.is_empty()).then_some(uid)
}

/// Where a store secret stands for a resource with UID `uid`.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim<'a> {
    /// Recorded as this resource's.
    Ours,
    /// Recorded for no resource (created outside the operator, or before owners were recorded): the first
    /// resource that addresses it claims it.
    Unclaimed,
    /// Another resource's.
    Other(&'a str),
}

/// The claim of `secret` for the resource `uid`.
pub fn claim<'a>(secret: &'a Secret, uid: &str) -> Claim<'a> {
    match owner_uid(&secret.description) {
        None => Claim::Unclaimed,
        Some(u) if u == uid => Claim::Ours,
        Some(u) => Claim::Other(u),
    }
}

/// The accounts a store secret rotates: the pair of a MultiUser secret, else the account of its current
/// credential.
pub fn rotated_accounts(secret: &Secret, current: Option<&DatabaseCredential>) -> Vec<String> {
    let cfg: RotationConfig = secret
        .rotation_config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    if !cfg.usernames.is_empty() {
        return cfg.usernames;
    }
    current.map(|c| c.username.clone()).into_iter().collect()
}

/// Why the spec no longer describes the store secret, if it does not: another secret type, another mode,
/// other accounts. Rotating anyway would overwrite a credential with a generated value, or keep rotating
/// an account the spec no longer names.
pub fn mismatch(
    spec: &ValidatedSpec,
    secret: &Secret,
    current: Option<&DatabaseCredential>,
) -> Option<String> {
    let store_type = secret.secret_type.as_str();
    let name = &secret.name;
    if store_type != spec.secret_type.as_str()
        && !(store_type.is_empty() && spec.secret_type == SecretType::Common)
    {
        return Some(format!(
            "store secret {name} is {store_type} but spec.secretType is {}: the operator does not change a secret's type (a COMMON rotation would overwrite a database credential); restore secretType or address another store secret with spec.secretName",
            spec.secret_type
        ));
    }
    let db = spec.database.as_ref()?;
    let cfg: RotationConfig = secret
        .rotation_config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let mode = format!("{:?}", db.accounts.mode());
    if !cfg.secret_sub_type.is_empty() && cfg.secret_sub_type != mode {
        return Some(format!(
            "store secret {name} is {} but spec.database.mode is {mode}: the operator does not change the mode of a secret; restore the mode or address another store secret with spec.secretName",
            cfg.secret_sub_type
        ));
    }
    let rotated: Vec<&str> = match &db.accounts {
        Accounts::SingleUser(_) => current.map(|c| c.username.as_str()).into_iter().collect(),
        Accounts::MultiUser(_) => cfg.usernames.iter().map(String::as_str).collect(),
    };
    let wanted: Vec<&str> = db.accounts.names().collect();
    let same = rotated.is_empty()
        || (rotated.len() == wanted.len() && rotated.iter().all(|u| wanted.contains(u)));
    (!same).then(|| {
        format!(
            "store secret {name} rotates {} but the spec names {}: the operator does not move a store secret to other accounts; restore the spec, or address a new store secret with spec.secretName for the new account",
            rotated.join(", "),
            wanted.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_back() {
        let d = description("team-a", "db", "1234-abcd");
        assert_eq!(owner_uid(&d), Some("1234-abcd"));
        assert_eq!(
            owner_uid("managed by secret-rotator for SecretRotation a/b"),
            None
        );
        assert_eq!(owner_uid("made by hand"), None);
        let mut s = Secret {
            description: d,
            ..Secret::default()
        };
        assert_eq!(claim(&s, "1234-abcd"), Claim::Ours);
        assert_eq!(claim(&s, "9999"), Claim::Other("1234-abcd"));
        s.description = String::new();
        assert_eq!(claim(&s, "9999"), Claim::Unclaimed);
    }
}
