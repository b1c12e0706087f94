//! One handler per CSMS operation. Bodies are parsed here into the store's request types.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::AppState;
use super::error::ApiError;
use secret_rotator_core::password::PasswordPolicy;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::RotateOptions;
use secret_rotator_store::model::*;
use secret_rotator_store::protocol::wire::decode_binary;
use secret_rotator_store::protocol::wire::*;

/// Path parameters whose every failure (for example invalid percent-encoding) is a CSMS error body.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| {
                ApiError::invalid_url("the request path is not valid (check its percent-encoding)")
            })
    }
}

/// Query parameters whose every failure is a CSMS error body.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|_| {
                ApiError::invalid_url(
                    "the query string is not valid (repeated or malformed parameters)",
                )
            })
    }
}

/// A JSON body whose every failure is a CSMS error body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::malformed_body("the request body could not be read"))?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::malformed_body(format!("malformed JSON body: {}", describe_json_error(&e)))
        })
    }
}

/// A JSON error's class and position, never the input it quotes.
fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected field or type",
        serde_json::error::Category::Eof => "unexpected end",
    };
    // For data errors serde names the field (`unknown field `x``); keep only the text before any value.
    let detail = e.to_string();
    let field = detail
        .split(" at line")
        .next()
        .filter(|d| {
            d.starts_with("unknown field")
                || d.starts_with("missing field")
                || d.starts_with("invalid type")
        })
        .map(|d| d.chars().take(120).collect::<String>());
    match field {
        Some(f) if !f.contains("string \"") => {
            format!("{what} ({f}) at line {} column {}", e.line(), e.column())
        }
        _ => format!("{what} at line {} column {}", e.line(), e.column()),
    }
}

fn value_pair(
    secret_string: Option<Zeroizing<String>>,
    secret_binary: Option<Zeroizing<String>>,
) -> Result<(Option<SecretValue>, Option<SecretValue>), ApiError> {
    let s = secret_string.map(|s| SecretValue::from_str_value(&s));
    let b = match secret_binary {
        Some(b) => Some(decode_binary(&b)?),
        None => None,
    };
    Ok((s, b))
}

#[derive(Deserialize)]
pub struct Paging {
    limit: Option<String>,
    marker: Option<String>,
}

fn parse_limit(limit: Option<&str>) -> Result<Option<u32>, ApiError> {
    match limit {
        None | Some("") => Ok(None),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200")),
    }
}

pub async fn create_secret(
    State(st): State<AppState>,
    Path(project): Path<String>,
    JsonBody(b): JsonBody<CreateSecretBody>,
) -> Result<Json<SecretBody>, ApiError> {
    let (secret_string, secret_binary) = value_pair(b.secret_string, b.secret_binary)?;
    let secret = st
        .store
        .create_secret(
            &project,
            CreateSecret {
                name: b.name,
                secret_type: b.secret_type,
                secret_string,
                secret_binary,
                description: b.description,
                kms_key_id: b.kms_key_id,
                auto_rotation: b.auto_rotation,
                rotation_period: b.rotation_period,
                rotation_config: b.rotation_config,
                event_subscriptions: b.event_subscriptions.unwrap_or_default(),
                enterprise_project_id: b.enterprise_project_id,
                rotation_func_urn: b.rotation_func_urn,
            },
        )
        .await?;
    Ok(Json(SecretBody { secret }))
}

pub async fn list_secrets(
    State(st): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<Paging>,
) -> Result<Json<SecretsBody>, ApiError> {
    let page = st
        .store
        .list_secrets(
            &project,
            parse_limit(q.limit.as_deref())?,
            q.marker.as_deref(),
        )
        .await?;
    Ok(Json(SecretsBody {
        secrets: page.secrets,
        page_info: page.page_info,
    }))
}

pub async fn show_secret(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<SecretBody>, ApiError> {
    Ok(Json(SecretBody {
        secret: st.store.show_secret(&project, &name).await?,
    }))
}

pub async fn update_secret(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(b): JsonBody<UpdateSecretBody>,
) -> Result<Json<SecretBody>, ApiError> {
    let secret = st
        .store
        .update_secret(
            &project,
            &name,
            UpdateSecret {
                description: b.description,
                kms_key_id: b.kms_key_id,
                auto_rotation: b.auto_rotation,
                rotation_period: b.rotation_period,
                event_subscriptions: b.event_subscriptions,
                rotation_func_urn: b.rotation_func_urn,
                state: b.state,
            },
        )
        .await?;
    Ok(Json(SecretBody { secret }))
}

pub async fn delete_secret(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    st.store.delete_secret(&project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_version(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(b): JsonBody<CreateVersionBody>,
) -> Result<Json<VersionMetadataBody>, ApiError> {
    let (secret_string, secret_binary) = value_pair(b.secret_string, b.secret_binary)?;
    let version_metadata = st
        .store
        .create_version(
            &project,
            &name,
            CreateVersion {
                secret_string,
                secret_binary,
                version_stages: b.version_stages.unwrap_or_default(),
                expire_time: b.expire_time,
            },
        )
        .await?;
    Ok(Json(VersionMetadataBody { version_metadata }))
}

pub async fn list_versions(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<Paging>,
) -> Result<Json<VersionMetadatasBody>, ApiError> {
    let page = st
        .store
        .list_versions(
            &project,
            &name,
            parse_limit(q.limit.as_deref())?,
            q.marker.as_deref(),
        )
        .await?;
    Ok(Json(VersionMetadatasBody {
        version_metadatas: page.version_metadatas,
        page_info: page.page_info,
    }))
}

/// Encodes a version for the wire: text as `secret_string`, bytes as base64 `secret_binary`.
pub fn version_wire(v: Version) -> VersionWire {
    let (secret_string, secret_binary) = match v.kind {
        ValueKind::String => (
            Some(Zeroizing::new(
                String::from_utf8_lossy(v.value.expose()).into_owned(),
            )),
            None,
        ),
        ValueKind::Binary => (
            None,
            Some(Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(v.value.expose()),
            )),
        ),
    };
    VersionWire {
        version_metadata: v.version_metadata,
        secret_string,
        secret_binary,
    }
}

pub async fn show_version(
    State(st): State<AppState>,
    Path((project, name, version_id)): Path<(String, String, String)>,
) -> Result<Json<VersionBody>, ApiError> {
    let v = st.store.show_version(&project, &name, &version_id).await?;
    Ok(Json(VersionBody {
        version: version_wire(v),
    }))
}

pub async fn show_stage(
    State(st): State<AppState>,
    Path((project, name, stage)): Path<(String, String, String)>,
) -> Result<Json<StageBody>, ApiError> {
    Ok(Json(StageBody {
        stage: st.store.show_stage(&project, &name, &stage).await?,
    }))
}

pub async fn update_stage(
    State(st): State<AppState>,
    Path((project, name, stage)): Path<(String, String, String)>,
    JsonBody(b): JsonBody<UpdateStageBody>,
) -> Result<Json<StageBody>, ApiError> {
    Ok(Json(StageBody {
        stage: st
            .store
            .update_stage(&project, &name, &stage, &b.version_id)
            .await?,
    }))
}

pub async fn delete_stage(
    State(st): State<AppState>,
    Path((project, name, stage)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    st.store.delete_stage(&project, &name, &stage).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// RotateSecret. A database secret needs a database: the server's targets (`--targets-file`, or
/// `--simulated-databases`) name it by the secret's InstanceId; without them the rotation is refused before
/// anything starts. In the default mode the answer comes at once with the task, and the database steps run
/// in the background (the task becomes SUCCESS or FAILED); with `--synchronous-rotation` it comes when the
/// rotation has finished.
pub async fn rotate(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<RotateResult>, ApiError> {
    let secret = st.store.show_secret(&project, &name).await?;
    // COMMON, disabled and pending-deletion secrets are refused by the store with their own codes.
    let needs_target = st.store.changes_databases()
        && secret.secret_type != "COMMON"
        && secret.state == SecretState::Enabled;
    let target = match (&st.resolver, needs_target) {
        (_, false) => None,
        (None, true) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                secret_rotator_store::error::codes::NO_DATABASE_TARGETS,
                format!(
                    "secret {name} is a {} secret, and this server has no databases to rotate it on: start `secret-rotator serve` with --targets-file (mapping the InstanceId of rotation_config to a database), or --simulated-databases to try the API without one",
                    secret.secret_type
                ),
            ));
        }
        (Some(r), true) => Some(r.resolve(&project, &secret)?),
    };
    let opts = RotateOptions {
        changer: target,
        policy: None,
    };
    let result = match st.rotation {
        super::RotationMode::Background => st.store.start_rotation(&project, &name, opts).await?,
        super::RotationMode::Synchronous => st.store.rotate(&project, &name, opts).await?,
    };
    Ok(Json(result))
}

/// DeleteSecretForSchedule (`POST .../scheduled-deleted-tasks/create`): the body
/// `{"recovery_window_in_days": 7..30}` may be empty (30 days).
pub async fn schedule_deletion(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<SecretBody>, ApiError> {
    let b: ScheduleDeletionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ScheduleDeletionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::malformed_body(format!("malformed JSON body: {}", describe_json_error(&e)))
        })?
    };
    let secret = st
        .store
        .schedule_deletion(&project, &name, b.recovery_window_in_days)
        .await?;
    Ok(Json(SecretBody { secret }))
}

/// RestoreSecret (`POST .../scheduled-deleted-tasks/cancel`, no body): the secret is ENABLED again.
pub async fn restore_secret(
    State(st): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<SecretBody>, ApiError> {
    Ok(Json(SecretBody {
        secret: st.store.restore_secret(&project, &name).await?,
    }))
}

#[derive(Deserialize)]
pub struct TaskQuery {
    secret_name: Option<String>,
    status: Option<String>,
    task_id: Option<String>,
    limit: Option<String>,
    marker: Option<String>,
}

pub async fn list_tasks(
    State(st): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Json<TasksBody>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("PROCESSING") => Some(TaskStatus::Processing),
        Some("SUCCESS") => Some(TaskStatus::Success),
        Some("FAILED") => Some(TaskStatus::Failed),
        Some(_) => {
            return Err(ApiError::bad_request(
                "status must be PROCESSING, SUCCESS or FAILED",
            ));
        }
    };
    let page = st
        .store
        .list_tasks(
            &project,
            TaskFilter {
                secret_name: q.secret_name,
                status,
                task_id: q.task_id,
                limit: parse_limit(q.limit.as_deref())?,
                marker: q.marker,
            },
        )
        .await?;
    Ok(Json(TasksBody {
        total: page.total,
        tasks: page.tasks,
        next_marker: page.next_marker,
    }))
}

pub async fn generate_password(
    Path(_project): Path<String>,
    JsonBody(b): JsonBody<GeneratePasswordBody>,
) -> Result<Json<PasswordBody>, ApiError> {
    let policy = PasswordPolicy::from(b);
    let v = secret_rotator_core::password::generate(&policy)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(PasswordBody {
        password: Zeroizing::new(v.expose_str().unwrap_or_default().to_owned()),
    }))
}

/// A path that is no API path: 404, with the code of an invalid request URL (nothing is missing).
pub async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        secret_rotator_store::error::codes::INVALID_URL,
        "no such API path",
    )
    .into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        secret_rotator_store::error::codes::METHOD_NOT_ALLOWED,
        "this method is not allowed on this path",
    )
    .into_response()
}

pub async fn healthz() -> &'static str {
    "ok"
}
