//! The password changer of a database secret: the connection to the database with the administrator's
//! credentials and the CA, read from Secrets of the resource's namespace.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::Run;
use crate::controller::failure::Failure;
use crate::validation::Database;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::PasswordChanger;
use secret_rotator_store::database;

/// The changer for `db`, refusing an administrator whose account the resource rotates.
pub async fn password_changer(
    run: &Run<'_>,
    db: &Database,
) -> Result<Arc<dyn PasswordChanger>, Failure> {
    let admin = match &db.admin_secret_ref {
        None => None,
        Some(r) => {
            let missing = |what: &str| {
                Failure::ConfigurationMissing(format!(
                    "adminSecretRef: Secret {}/{} has no key {what}",
                    run.ns, r.name
                ))
            };
            let user = secret_key(run, &r.name, &r.username_key)
                .await?
                .ok_or_else(|| missing(&r.username_key))?;
            let pw = secret_key(run, &r.name, &r.password_key)
                .await?
                .ok_or_else(|| missing(&r.password_key))?;
            let user = user.expose_str().unwrap_or_default().to_owned();
            if db.accounts.names().any(|a| a == user) {
                return Err(Failure::Forbidden(format!(
                    "adminSecretRef: Secret {}/{} holds the credentials of {user}, an account this resource rotates; the operator never rotates the administrator's own account",
                    run.ns, r.name
                )));
            }
            Some((user, pw))
        }
    };
    let ca_pem = match &db.ca_secret_ref {
        None => None,
        Some(r) => Some(
            secret_key(run, &r.name, &r.key)
                .await?
                .ok_or_else(|| {
                    Failure::ConfigurationMissing(format!(
                        "tls.caSecretRef: Secret {}/{} has no key {}",
                        run.ns, r.name, r.key
                    ))
                })?
                .expose()
                .to_vec(),
        ),
    };
    let conn = database::Connection {
        engine: db.engine,
        host: db.host.clone(),
        port: db.port,
        database: db.database.clone(),
        tls: db.tls_mode,
        ca_pem,
        admin,
    };
    Ok(database::changer_in(conn, run.ctx.admin_pool.clone()))
}

/// One key of a Secret in the resource's namespace.
async fn secret_key(run: &Run<'_>, name: &str, key: &str) -> Result<Option<SecretValue>, Failure> {
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
    let s = api.get_opt(name).await.map_err(|e| {
        Failure::ConfigurationMissing(format!("reading Secret {}/{name}: {e}", run.ns))
    })?;
    Ok(s.and_then(|s| s.data)
        .and_then(|d| d.get(key).map(|b| SecretValue::new(b.0.clone()))))
}
