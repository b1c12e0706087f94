//! The master key kept in a Kubernetes Secret that the operator creates once (`--master-key-secret`).
//!
//! A chart rendered with `helm template` (Argo CD, Flux's kustomize path) cannot generate a key once:
//! `lookup` returns nothing there, so every render would make a new key and the store would become
//! unreadable at the next restart. Instead the operator, at start, reads the Secret named by
//! `--master-key-secret` in its own namespace and creates it with a new random key when it does not
//! exist (a create that loses a race reads the winner's key). It then writes the key, mode 0600, to
//! `--master-key-file`, which with this flag lies on an in-memory volume (the chart mounts an
//! `emptyDir` with `medium: Memory`), and everything else reads the key from that file as before.
//!
//! The Secret is never updated or deleted by the operator. A file that already holds a different key is
//! an error: the operator never overwrites a key.
//!
//! RBAC in the operator's namespace: `get` on that one Secret (by `resourceNames`) and `create` on
//! Secrets (Kubernetes cannot narrow `create` to a name).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use zeroize::Zeroizing;

use secret_rotator_store::embedded::crypto::MasterKey;

/// The key in the Secret's data that holds the base64 text of the 32-byte key (as a key file holds it).
pub const DATA_KEY: &str = "master.key";
/// The label the operator puts on the Secret it creates (with the value `secret-rotator`).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The annotation the operator puts on the Secret it creates.
pub const ANNOTATION_MASTER_KEY: &str = "secretrotator.dev/master-key";

/// Errors of [`ensure`].
#[derive(Debug, thiserror::Error)]
pub enum MasterKeySecretError {
    /// No `--master-key-file` to write the key to.
    #[error(
        "--master-key-secret needs --master-key-file: the file (on an in-memory volume) the key is written to"
    )]
    NoFile,
    /// The Kubernetes API failed.
    #[error("master key Secret {namespace}/{name}: {message}")]
    Api {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What failed (never the key).
        message: String,
    },
    /// The Secret exists but holds no valid key.
    #[error("master key Secret {namespace}/{name}: {message}")]
    Invalid {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong (never the key).
        message: String,
    },
    /// The key file exists with another key, or cannot be written.
    #[error("--master-key-file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong (never the key).
        message: String,
    },
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret existed; its key was used.
    Existing,
    /// The Secret did not exist; this process created it with a new random key.
    Created,
}

/// With `secret` set: reads (or creates once) the master key Secret and writes its key to `file`.
/// Without it: does nothing. The namespace is `POD_NAMESPACE`, else the client's default namespace.
pub async fn ensure_from_env(
    secret: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Outcome>, MasterKeySecretError> {
    let Some(name) = secret else {
        return Ok(None);
    };
    let file = file.ok_or(MasterKeySecretError::NoFile)?;
    secret_rotator_store::tls::install_crypto_provider();
    let api_err = |namespace: &str, message: String| MasterKeySecretError::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    let client = kube::Client::try_default()
        .await
        .map_err(|e| api_err("?", format!("connecting to Kubernetes: {e}")))?;
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let outcome = ensure(&client, &namespace, name, file).await?;
    Ok(Some(outcome))
}

/// Reads the Secret `namespace/name`, creating it with a new random key when absent, and writes the
/// key to `file` (mode 0600; an existing file must hold the same key).
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    file: &Path,
) -> Result<Outcome, MasterKeySecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |message: String| MasterKeySecretError::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    let (secret, outcome) = match api
        .get_opt(name)
        .await
        .map_err(|e| api_err(e.to_string()))?
    {
        Some(s) => (s, Outcome::Existing),
        None => {
            let key = MasterKey::generate().map_err(|e| api_err(e.to_string()))?;
            let text = key.to_base64();
            let new = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        LABEL_MANAGED_BY.to_owned(),
                        "secret-rotator".to_owned(),
                    )])),
                    annotations: Some(BTreeMap::from([(
                        ANNOTATION_MASTER_KEY.to_owned(),
                        "created once by the operator; the embedded store is unreadable without it: back it up, never delete it".to_owned(),
                    )])),
                    ..Default::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(BTreeMap::from([(
                    DATA_KEY.to_owned(),
                    ByteString(text.as_bytes().to_vec()),
                )])),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &new).await {
                Ok(s) => {
                    tracing::info!(namespace, name, key_id = %key.key_id(), "created the master key Secret with a new random key");
                    (s, Outcome::Created)
                }
                // Another replica created it first: use its key.
                Err(kube::Error::Api(e)) if e.code == 409 => (
                    api.get(name).await.map_err(|e| api_err(e.to_string()))?,
                    Outcome::Existing,
                ),
                Err(e) => return Err(api_err(format!("creating: {e}"))),
            }
        }
    };
    let invalid = |message: &str| MasterKeySecretError::Invalid {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message: message.to_owned(),
    };
    if let Some(why) = unproven(&secret) {
        return Err(invalid(why));
    }
    let text = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .map(|b| Zeroizing::new(b.0.clone()))
        .ok_or_else(|| invalid("has no data key `master.key`"))?;
    let text = Zeroizing::new(
        String::from_utf8(text.to_vec()).map_err(|_| invalid("`master.key` is not text"))?,
    );
    let key = MasterKey::from_base64(&text, &format!("Secret {namespace}/{name}"))
        .map_err(|e| invalid(&e.to_string()))?;
    write_key_file(file, &key)?;
    tracing::info!(namespace, name, key_id = %key.key_id(), "master key read from its Secret");
    Ok(outcome)
}

/// Why a Secret of the key's name is not one the operator made, if it is not: whoever may create Secrets in
/// the namespace could have planted a key they know, and every value would be encrypted under it.
pub fn unproven(secret: &Secret) -> Option<&'static str> {
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == "secret-rotator");
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_MASTER_KEY));
    (!labelled || !annotated).then_some(
        "exists but was not created by secret-rotator (it lacks the label app.kubernetes.io/managed-by=secret-rotator and the annotation secretrotator.dev/master-key): the operator does not encrypt with a key someone else may know. Delete it to let the operator create one; to bring a key of your own, set store.embedded.existingMasterKeySecret (mounted as a file) instead, or add both markers yourself",
    )
}

/// Writes the key file (0600), or checks that an existing one holds the same key.
fn write_key_file(file: &Path, key: &MasterKey) -> Result<(), MasterKeySecretError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file_err = |message: String| MasterKeySecretError::File {
        path: file.display().to_string(),
        message,
    };
    if file.exists() {
        let existing = MasterKey::from_file(file).map_err(|e| file_err(e.to_string()))?;
        if existing.key_id() != key.key_id() {
            return Err(file_err(
                "holds another key than the master key Secret; refusing to overwrite it".to_owned(),
            ));
        }
        return Ok(());
    }
    let text = key.to_base64();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| file_err(format!("cannot create: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| file_err(format!("cannot write: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_secret_without_the_operators_markers_is_refused() {
        let mut s = Secret::default();
        assert!(unproven(&s).is_some());
        s.metadata.labels = Some(BTreeMap::from([(
            LABEL_MANAGED_BY.to_owned(),
            "secret-rotator".to_owned(),
        )]));
        assert!(unproven(&s).is_some(), "the label alone");
        s.metadata.annotations = Some(BTreeMap::from([(
            ANNOTATION_MASTER_KEY.to_owned(),
            "x".to_owned(),
        )]));
        assert_eq!(unproven(&s), None);
        s.metadata.labels = Some(BTreeMap::from([(
            LABEL_MANAGED_BY.to_owned(),
            "someone".to_owned(),
        )]));
        assert!(unproven(&s).is_some(), "another manager");
    }

    #[test]
    fn the_key_file_is_written_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate().unwrap();
        write_key_file(&path, &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(MasterKey::from_file(&path).unwrap().key_id(), key.key_id());
        // The same key again: fine.
        write_key_file(&path, &key).unwrap();
        // Another key: refused, the file keeps the first one.
        let other = MasterKey::generate().unwrap();
        let err = write_key_file(&path, &other).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(MasterKey::from_file(&path).unwrap().key_id(), key.key_id());
    }
}
