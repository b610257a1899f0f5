//! SQL of access requests. A row holds the whole domain request as JSON in `detail`,
//! plus the columns that queries filter on, all written together from one `Request`.

use super::sql::{Row, query};
use chrono::{DateTime, Utc};

use super::{Db, StoreError, WriteTx, from_millis, to_millis};
use crate::domain::{
    PermissionSetArn, PrincipalId, Request, RequestId, RequestRecord, RequestState, UserId,
};
use jitgate_core::app::ports::RequestQuery;

const COLUMNS: &str = "detail, principal_id, permission_set_arn, settled_at";

/// Inserts a new request.
pub async fn insert(tx: &mut WriteTx, stored: &RequestRecord) -> Result<(), StoreError> {
    let r = &stored.request;
    query(
        "INSERT INTO requests (id, requester, profile, account_id, os_user, run_as_mode, \
         duration_secs, reason, ticket, created_at, state, expires_at, principal_id, \
         permission_set_arn, detail, updated_at, settled_at, awaiting_decision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(r.id.to_string())
    .bind(r.requester.as_str())
    .bind(&r.profile)
    .bind(r.account.as_str())
    .bind(r.os_user.as_str())
    .bind(r.run_as_mode.as_str())
    .bind(i64::try_from(r.duration.as_secs()).unwrap_or(i64::MAX))
    .bind(&r.reason)
    .bind(r.ticket.as_deref())
    .bind(to_millis(r.created_at))
    .bind(r.state.name().as_str())
    .bind(r.expires_at().map(to_millis))
    .bind(stored.principal_id.as_str())
    .bind(stored.permission_set_arn.as_str())
    .bind(detail(r)?)
    .bind(to_millis(r.created_at))
    .bind(stored.settled_at.map(to_millis))
    .bind(i64::from(awaiting(r).is_some()))
    .execute(&mut *tx)
    .await?;
    if let Some(approvals) = awaiting(r) {
        record_decision_approvals(tx, r.id, approvals).await?;
    }
    if tx.slack_outbox {
        super::slack_posts::owe_new(tx, r.id, r.created_at).await?;
        if let Some(event) = super::slack_dms::event_of(&r.state) {
            super::slack_dms::owe(tx, r.id, event, r.created_at).await?;
        }
    }
    Ok(())
}

/// The approvals of the decision `r` awaits (its own while pending, its extension's while
/// one is asked for), or `None` when nothing waits for a decision.
fn awaiting(r: &Request) -> Option<&[crate::domain::Approval]> {
    match (&r.state, &r.extension) {
        (crate::domain::RequestState::Pending, _) => Some(&r.approvals),
        (crate::domain::RequestState::Active { .. }, Some(extension)) => Some(&extension.approvals),
        _ => None,
    }
}

/// Rewrites who has approved the decision a request awaits (the approval queue leaves
/// out what its caller approved already).
async fn record_decision_approvals(
    tx: &mut WriteTx,
    id: RequestId,
    approvals: &[crate::domain::Approval],
) -> Result<(), StoreError> {
    for approval in approvals {
        query(
            "INSERT INTO decision_approvals (request_id, approver) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(approval.by.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Writes a request's new state (and anything the transition changed).
pub async fn save(
    tx: &mut WriteTx,
    stored: &RequestRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let r = &stored.request;
    query(
        "UPDATE requests SET state = $1, expires_at = $2, detail = $3, updated_at = $4, \
         settled_at = $5, awaiting_decision = $6 WHERE id = $7",
    )
    .bind(r.state.name().as_str())
    .bind(r.expires_at().map(to_millis))
    .bind(detail(r)?)
    .bind(to_millis(now))
    .bind(stored.settled_at.map(to_millis))
    .bind(i64::from(awaiting(r).is_some()))
    .bind(r.id.to_string())
    .execute(&mut *tx)
    .await?;
    query("DELETE FROM decision_approvals WHERE request_id = $1")
        .bind(r.id.to_string())
        .execute(&mut *tx)
        .await?;
    if let Some(approvals) = awaiting(r) {
        record_decision_approvals(tx, r.id, approvals).await?;
    }
    if matches!(r.state, RequestState::Ended { .. }) {
        // Owed in the same transaction, so no crash can end a grant and forget its
        // live sessions (even one revoked before it was active: the assignment may have
        // been made already).
        super::session_closings::owe(tx, r.id, now).await?;
    }
    if tx.slack_outbox {
        // With the change, so the channel message can never show less than happened.
        super::slack_posts::owe(tx, r.id, now).await?;
        if let Some(event) = super::slack_dms::event_of(&r.state) {
            super::slack_dms::owe(tx, r.id, event, now).await?;
        }
    }
    Ok(())
}

/// Reads a request inside `tx`, locking its row on Postgres so concurrent transitions of
/// the same request queue up and the second sees the first's result.
pub async fn lock(tx: &mut WriteTx, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE id = $1{}",
        tx.row_lock()
    );
    let row = query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Reads a request.
pub async fn get(db: &Db, id: RequestId) -> Result<Option<RequestRecord>, StoreError> {
    let row = query(&format!("SELECT {COLUMNS} FROM requests WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// An open (pending, approved, active) principal-tag request of one person for another
/// OS user than `os_user`, inside `tx`: what would conflict with a new request (one
/// principal-tag OS user per person); one is enough to refuse. A person is found by
/// their jitgate id or their IdC user, since two sign-ins may map to the same IdC user.
/// Four range scans on the partial indexes of migration 0005 (`os_user <>` alone would
/// read every open request of the person), so a submit stays cheap however many
/// requests a person has open.
pub async fn run_as_conflict(
    tx: &mut WriteTx,
    requester: &UserId,
    principal_id: &PrincipalId,
    os_user: &str,
) -> Result<Option<Request>, StoreError> {
    const OPEN: &str =
        "state IN ('pending', 'approved', 'active') AND run_as_mode = 'principal-tag'";
    let row = query(&format!(
        "SELECT {COLUMNS} FROM requests WHERE requester = $1 AND {OPEN} AND os_user < $3 \
         UNION ALL SELECT {COLUMNS} FROM requests WHERE requester = $1 AND {OPEN} AND os_user > $3 \
         UNION ALL SELECT {COLUMNS} FROM requests WHERE principal_id = $2 AND {OPEN} AND os_user < $3 \
         UNION ALL SELECT {COLUMNS} FROM requests WHERE principal_id = $2 AND {OPEN} AND os_user > $3 \
         LIMIT 1"
    ))
    .bind(requester.as_str())
    .bind(principal_id)
    .bind(os_user)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref()
        .map(|r| from_row(r).map(|s| s.request))
        .transpose()
}

/// How many open (pending, approved, active) requests `requester` has, counted up to
/// `cap` (the answer to "may they open another" needs no more), inside `tx` (after the
/// person's lock, so concurrent submissions count each other). Reads the partial index
/// of open requests (migration 0014), not the person's history.
pub async fn open_count(tx: &mut WriteTx, requester: &UserId, cap: i64) -> Result<i64, StoreError> {
    let row = query(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM requests WHERE requester = $1 \
         AND state IN ('pending', 'approved', 'active') LIMIT $2) AS open",
    )
    .bind(requester.as_str())
    .bind(cap)
    .fetch_one(&mut *tx)
    .await?;
    row.try_get("n")
}

/// The IdC user a request is for (fixed at submit), read without a lock so the caller
/// can lock the principal before the request.
pub async fn principal_of(tx: &mut WriteTx, id: RequestId) -> Result<Option<String>, StoreError> {
    let row = query("SELECT principal_id FROM requests WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    row.map(|r| r.try_get("principal_id")).transpose()
}

/// The requests of one principal that matter to convergence: those that want their
/// assignment (approved, active) and ended ones whose revocation is not settled yet.
pub async fn of_principal_unsettled(
    db: &Db,
    principal_id: &PrincipalId,
) -> Result<Vec<RequestRecord>, StoreError> {
    let rows = query(&format!(
        "SELECT {COLUMNS} FROM requests WHERE principal_id = $1 AND \
         (state IN ('approved', 'active') OR (settled_at IS NULL AND state IN ('ended', 'failed', 'cancelled'))) \
         ORDER BY created_at"
    ))
    .bind(principal_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The profiles of pending and approved requests (the sweep closes those of profiles no
/// longer configured).
pub async fn open_profiles(db: &Db) -> Result<Vec<String>, StoreError> {
    let rows = query(
        "SELECT DISTINCT profile FROM requests WHERE state IN ('pending', 'approved') ORDER BY profile",
    )
    .fetch_all(db.scanner())
    .await?;
    rows.iter().map(|r| r.try_get("profile")).collect()
}

/// Ids of pending and approved requests of `profile`, oldest first, at most `limit`.
pub async fn open_of_profile(
    db: &Db,
    profile: &str,
    limit: i64,
) -> Result<Vec<RequestId>, StoreError> {
    let rows = query(
        "SELECT id FROM requests WHERE profile = $1 AND state IN ('pending', 'approved') \
         ORDER BY created_at LIMIT $2",
    )
    .bind(profile)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(|r| parse_id(r.try_get("id")?)).collect()
}

/// The approval queue of `approver`, the one query behind the web's and the API's:
/// requests waiting for a decision (pending, or an extension asked for) in `profiles`,
/// not `approver`'s own and not already approved by them. Oldest first, taking turns
/// between requesters (every requester's oldest before anyone's second), so no one can
/// push others' requests out of approvers' sight by asking often; `offset`/`limit` page
/// through it.
pub async fn approval_queue(
    db: &Db,
    approver: &UserId,
    profiles: &[String],
    offset: i64,
    limit: i64,
) -> Result<Vec<RequestRecord>, StoreError> {
    if profiles.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..profiles.len()).map(|i| format!("${}", i + 4)).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM (\
           SELECT {COLUMNS}, created_at, id, \
             ROW_NUMBER() OVER (PARTITION BY requester ORDER BY created_at, id) AS turn \
           FROM requests r WHERE awaiting_decision = 1 AND requester <> $1 \
             AND profile IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM decision_approvals a \
                             WHERE a.request_id = r.id AND a.approver = $1)\
         ) q ORDER BY turn, created_at, id LIMIT $2 OFFSET $3",
        placeholders.join(", ")
    );
    let mut q = query(&sql).bind(approver.as_str()).bind(limit).bind(offset);
    for profile in profiles {
        q = q.bind(profile.as_str());
    }
    let rows = q.fetch_all(db.scanner()).await?;
    rows.iter().map(from_row).collect()
}

/// Ids of pending requests of `profile` made at or before `cutoff` (candidates for
/// lapsing), oldest first, at most `limit`.
pub async fn pending_since_before(
    db: &Db,
    profile: &str,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RequestId>, StoreError> {
    let rows = query(
        "SELECT id FROM requests WHERE state = 'pending' AND profile = $1 AND created_at <= $2 \
         ORDER BY created_at LIMIT $3",
    )
    .bind(profile)
    .bind(to_millis(cutoff))
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(|r| parse_id(r.try_get("id")?)).collect()
}

/// Active grants whose `expires_at` has passed, soonest first.
pub async fn due_for_expiry(
    db: &Db,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RequestId>, StoreError> {
    let rows = query(
        "SELECT id FROM requests WHERE state = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(to_millis(now))
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(|r| parse_id(r.try_get("id")?)).collect()
}

/// The next `expires_at` among active grants.
pub async fn next_expiry(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = query("SELECT MIN(expires_at) AS next FROM requests WHERE state = 'active'")
        .fetch_one(db.reader())
        .await?;
    let next: Option<i64> = row.try_get("next")?;
    next.map(from_millis).transpose()
}

/// Number of requests per state, for metrics and the benchmark.
pub async fn count_by_state(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = query("SELECT state, COUNT(*) AS n FROM requests GROUP BY state ORDER BY state")
        .fetch_all(db.scanner())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect()
}

fn detail(r: &Request) -> Result<String, StoreError> {
    serde_json::to_string(r).map_err(|e| StoreError::Corrupt(format!("request {}: {e}", r.id)))
}

fn parse_id(text: String) -> Result<RequestId, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("request id `{text}` is not a uuid")))
}

fn from_row(row: &Row) -> Result<RequestRecord, StoreError> {
    let detail: String = row.try_get("detail")?;
    let request: Request = serde_json::from_str(&detail)
        .map_err(|e| StoreError::Corrupt(format!("request detail: {e}")))?;
    let settled_at: Option<i64> = row.try_get("settled_at")?;
    Ok(RequestRecord {
        request,
        principal_id: PrincipalId(row.try_get("principal_id")?),
        permission_set_arn: PermissionSetArn(row.try_get("permission_set_arn")?),
        settled_at: settled_at.map(from_millis).transpose()?,
    })
}

/// Marks an ended request's revocation as done (nothing left for it in AWS).
pub async fn settle(tx: &mut WriteTx, id: RequestId, now: DateTime<Utc>) -> Result<(), StoreError> {
    query("UPDATE requests SET settled_at = $1 WHERE id = $2 AND settled_at IS NULL")
        .bind(to_millis(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Requests matching `query`, newest first.
///
/// What a non-admin may see is their own requests or those of the profiles they
/// approve: an `OR` that no index serves, so the database would sort every request it
/// could see to return the newest page. Instead each part (their own; each profile)
/// is its own query, which walks an index newest first and stops at the page size, and
/// the pages are merged: the cost is a few pages, however many requests there are.
pub async fn list(db: &Db, asked: &RequestQuery) -> Result<Vec<RequestRecord>, StoreError> {
    let filter = &asked.listing;
    // Built from fixed SQL fragments; every value is a bound parameter.
    let mut binds: Vec<Bind> = Vec::new();
    let mut param = |binds: &mut Vec<Bind>, value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    let mut common: Vec<String> = Vec::new();
    if let Some(r) = &filter.requester {
        common.push(format!(
            "requester = {}",
            param(&mut binds, Bind::Text(r.as_str().to_owned()))
        ));
    }
    if let Some(profiles) = &filter.profiles {
        common.push(in_list(
            "profile",
            profiles.iter().cloned(),
            &mut binds,
            &mut param,
        ));
    }
    if !filter.states.is_empty() {
        let states = filter.states.iter().map(|s| s.as_str().to_owned());
        common.push(in_list("state", states, &mut binds, &mut param));
    }
    if let Some(before) = filter.created_before {
        common.push(format!(
            "created_at < {}",
            param(&mut binds, Bind::Int(to_millis(before)))
        ));
    }
    // One branch per part of what the caller may see; `None`: everything.
    let parts: Vec<Option<String>> = match &asked.visible_to {
        None => vec![None],
        Some((me, approves)) => {
            let mut parts = vec![Some(format!(
                "requester = {}",
                param(&mut binds, Bind::Text(me.as_str().to_owned()))
            ))];
            for profile in approves {
                parts.push(Some(format!(
                    "profile = {}",
                    param(&mut binds, Bind::Text(profile.clone()))
                )));
            }
            parts
        }
    };
    let limit = param(&mut binds, Bind::Int(filter.limit.clamp(1, 500)));
    let branches: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let clauses: Vec<&str> = common
                .iter()
                .map(String::as_str)
                .chain(part.as_deref())
                .collect();
            let filter_sql = if clauses.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", clauses.join(" AND "))
            };
            format!(
                "SELECT * FROM (SELECT {COLUMNS}, created_at, id FROM requests{filter_sql} \
                 ORDER BY created_at DESC, id LIMIT {limit}) AS part{i}"
            )
        })
        .collect();
    // UNION, not UNION ALL: a request can be in two parts (one's own, in a profile one
    // approves).
    let sql = format!(
        "SELECT {COLUMNS} FROM ({}) AS visible ORDER BY created_at DESC, id LIMIT {limit}",
        branches.join(" UNION ")
    );
    let mut query = query(&sql);
    for b in binds {
        query = match b {
            Bind::Text(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    // A scan: a filter that matches rarely (an approval queue over a profile with a
    // long history) still walks many index entries before the page fills.
    let rows = query.fetch_all(db.scanner()).await?;
    rows.iter().map(from_row).collect()
}

enum Bind {
    Text(String),
    Int(i64),
}

/// `column IN ($a, $b, ...)`, or a clause that matches nothing for an empty list.
fn in_list(
    column: &str,
    values: impl Iterator<Item = String>,
    binds: &mut Vec<Bind>,
    param: &mut impl FnMut(&mut Vec<Bind>, Bind) -> String,
) -> String {
    let placeholders: Vec<String> = values.map(|v| param(binds, Bind::Text(v))).collect();
    if placeholders.is_empty() {
        "1 = 0".into()
    } else {
        format!("{column} IN ({})", placeholders.join(", "))
    }
}
