//! The password changer of a database secret: the connection to the server with the administrator's
//! credentials and the CA, read from Secrets of the server's namespace (never from one a tenant names).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::Run;
use crate::controller::failure::Failure;
use crate::validation::Database;
use crate::validation::server::SecretKey;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::PasswordChanger;
use secret_rotator_store::database;

/// The administrator's user name and password, when the server has an administrator.
pub async fn admin(run: &Run<'_>, db: &Database) -> Result<Option<(String, SecretValue)>, Failure> {
    let Some(keys) = &db.server.admin else {
        return Ok(None);
    };
    let title = &db.server.title;
    let user = secret_key(run, &keys.username)
        .await?
        .ok_or_else(|| unreadable(title))?;
    let password = secret_key(run, &keys.password)
        .await?
        .ok_or_else(|| unreadable(title))?;
    let user = user.expose_str().unwrap_or_default().to_owned();
    if db.accounts.names().any(|a| a == user) {
        return Err(Failure::Forbidden(format!(
            "{user} is the administrator of {title}: the operator never rotates the administrator's own account"
        )));
    }
    Ok(Some((user, password)))
}

/// The changer for `db`, refusing an administrator whose account the resource rotates.
pub async fn password_changer(
    run: &Run<'_>,
    db: &Database,
) -> Result<Arc<dyn PasswordChanger>, Failure> {
    let admin = admin(run, db).await?;
    let ca_pem = match &db.server.ca {
        None => None,
        Some(k) => Some(
            secret_key(run, k)
                .await?
                .ok_or_else(|| {
                    Failure::ConfigurationMissing(format!(
                        "{}: the CA of tls.caSecretRef cannot be read (see the server's status)",
                        db.server.title
                    ))
                })?
                .expose()
                .to_vec(),
        ),
    };
    let conn = database::Connection {
        engine: db.server.engine,
        host: db.server.host.clone(),
        port: db.server.port,
        database: db.database.clone(),
        tls: db.server.tls_mode,
        ca_pem,
        admin,
    };
    Ok(database::changer_in(conn, run.ctx.admin_pool.clone()))
}

fn unreadable(title: &str) -> Failure {
    Failure::ConfigurationMissing(format!(
        "{title}: the administrator's credentials cannot be read (see the server's status)"
    ))
}

/// One key of a Secret of the server's namespace; the operator's error text stays in its log.
async fn secret_key(run: &Run<'_>, k: &SecretKey) -> Result<Option<SecretValue>, Failure> {
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &k.namespace);
    let s = api.get_opt(&k.name).await.map_err(|e| {
        tracing::warn!(namespace = %k.namespace, name = %k.name, error = %e, "reading a server's Secret failed");
        Failure::ConfigurationMissing("a Secret of the database server cannot be read".to_owned())
    })?;
    Ok(s.and_then(|s| s.data)
        .and_then(|d| d.get(&k.key).map(|b| SecretValue::new(b.0.clone()))))
}
