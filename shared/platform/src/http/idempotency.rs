//! Idempotency (BRIEF §4) for routes that declare it: the same `Idempotency-Key` with the same
//! request returns the original response; with a different request, 422; while the first is
//! still in progress, 409. The key's record, the state changes and the outbox are committed in
//! one transaction, so a retried request never has a second effect. Keys are per caller.

use crate::auth::Auth;
use chrono::Duration;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::problem::{ApiError, Response, commit_error};
use super::request::Request;
use super::routing::RouteEntry;
use crate::deps::Deps;
use crate::item::{Condition, Key, Update, Write, item};
use crate::outbox;
use crate::ports::{Encoded, HandlerError, TableError};
use crate::work::{Cause, Work};

/// The idempotency header of mutating requests.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::hours(24);
/// How long a request holds its idempotency key before another may take it over (a crashed
/// request must not block its key for a day).
pub const IDEMPOTENCY_LOCK: Duration = Duration::seconds(60);

/// Runs `entry` for `request` under the idempotency key `key`: the first request with the key
/// runs and its response is stored with its effects in one transaction; a retry gets that
/// response (`idempotent-replayed: true`); another request under the key gets 422; one while
/// the first is still running, 409. A failure that is not the caller's releases the key.
pub(super) async fn run(
    deps: &Deps,
    entry: &RouteEntry,
    request: &Request,
    key: &str,
    cause: Cause,
) -> Result<Response, ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            Some(IDEMPOTENCY_HEADER),
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    // A token that is not accepted (forged, expired, revoked) is answered as such before
    // the key store is touched: its holder is nobody's, and must not read or fill the
    // anonymous caller's keys either.
    if matches!(
        request.auth,
        Auth::Refused(_) | Auth::Unavailable(_) | Auth::Misconfigured(_)
    ) {
        request.actor()?;
    }
    let table = deps.table().map_err(ApiError::from)?;
    let subject = request
        .actor()
        .map(|a| a.subject)
        .unwrap_or_else(|_| "anonymous".into());
    let record_key = Key::new(format!("IDEM#{subject}#{key}"), deps.function.clone());
    let fingerprint = fingerprint(request);
    let now = deps.clock.now();
    let claim = item(
        &record_key,
        json!({
            "state": KeyState::InProgress,
            "fingerprint": fingerprint,
            "locked_until": (now + IDEMPOTENCY_LOCK).timestamp(),
            "ttl": (now + IDEMPOTENCY_RETENTION).timestamp(),
        }),
    );
    let free = Condition::Or(vec![
        Condition::NotExists,
        Condition::And(vec![
            Condition::Equals("state".into(), json!(KeyState::InProgress)),
            Condition::LessThan("locked_until".into(), now.timestamp()),
        ]),
    ]);
    match table.put(claim, Some(free)).await {
        Ok(()) => {}
        Err(TableError::ConditionFailed) => {
            let existing = table
                .get(&record_key)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::conflict("the request with this Idempotency-Key changed state; retry")
                })?;
            let existing: KeyRecord = crate::item::parse(existing)?;
            if existing.fingerprint != fingerprint {
                return Err(ApiError::unprocessable(
                    Some(IDEMPOTENCY_HEADER),
                    "this Idempotency-Key was used for a different request",
                ));
            }
            if existing.state == KeyState::Completed {
                let mut stored = existing.response.ok_or_else(|| {
                    ApiError::internal(
                        HandlerError::bug("a completed key without its response").into(),
                    )
                })?;
                stored
                    .headers
                    .insert("idempotent-replayed".into(), "true".into());
                return Ok(stored);
            }
            // Held by a request still running, or by one that died before it could release
            // the key: the lock lapses once `locked_until` has passed, when a retry runs
            // afresh.
            let wait = existing
                .locked_until
                .map_or(IDEMPOTENCY_LOCK.num_seconds(), |until| {
                    until.saturating_sub(now.timestamp()).saturating_add(1)
                })
                .clamp(1, IDEMPOTENCY_LOCK.num_seconds() + 1);
            return Err(ApiError {
                retry_after: Some(u32::try_from(wait).unwrap_or(1)),
                ..ApiError::conflict("a request with this Idempotency-Key is still in progress")
            });
        }
        Err(e) => return Err(e.into()),
    }

    let mut work = Work::new(deps, cause);
    let outcome = entry.handler.handle(request, &mut work).await;
    let response = match outcome {
        Ok(r) => r,
        Err(e) if e.status < 500 => e.to_response(),
        Err(e) => {
            // Not the caller's fault: release the key so that a retry runs again.
            let _ = table
                .delete(
                    &record_key,
                    Some(Condition::Equals("fingerprint".into(), json!(fingerprint))),
                )
                .await;
            return Err(e);
        }
    };
    let complete = Write::Update {
        key: record_key.clone(),
        update: Update::new()
            .set("state", json!(KeyState::Completed))
            .set(
                "response",
                serde_json::to_value(&response).unwrap_or(Value::Null),
            )
            .remove("locked_until"),
        condition: Some(Condition::Equals("fingerprint".into(), json!(fingerprint))),
    };
    let source = outbox::source_key(&format!("http:{}:{}:{}", deps.function, subject, key));
    let writes = if response.status < 400 {
        std::mem::take(&mut work.writes)
    } else {
        Vec::new()
    };
    let outgoing = if response.status < 400 {
        std::mem::take(&mut work.outgoing)
    } else {
        Vec::new()
    };
    let outgoing = Encoded::new(&outgoing);
    if let Err(e) = outbox::commit(
        deps,
        &source,
        &request.request_id,
        vec![complete],
        writes,
        &outgoing,
    )
    .await
    {
        let _ = table
            .delete(
                &record_key,
                Some(Condition::Equals(
                    "state".into(),
                    json!(KeyState::InProgress),
                )),
            )
            .await;
        return Err(commit_error(e));
    }
    outbox::dispatch(deps, &source, &outgoing, &entry.key, &request.request_id)
        .await
        .map_err(ApiError::from)?;
    Ok(response)
}

/// Where a request under an idempotency key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyState {
    /// A request holds the key (until `locked_until`, if it crashed).
    InProgress,
    /// Its response is stored and answers every retry.
    Completed,
}

/// The record of an idempotency key, as the table holds it.
#[derive(Debug, serde::Deserialize)]
struct KeyRecord {
    state: KeyState,
    fingerprint: String,
    #[serde(default)]
    response: Option<Response>,
    /// While in progress: when the lock lapses (epoch seconds).
    #[serde(default)]
    locked_until: Option<i64>,
}

/// What makes two requests "the same" for idempotency: method, path and body.
fn fingerprint(request: &Request) -> String {
    let mut h = Sha256::new();
    h.update(request.method.as_str().as_bytes());
    h.update(b" ");
    h.update(request.path.as_bytes());
    h.update(b"\n");
    h.update(&request.body);
    hex::encode(h.finalize())
}
