//! The ports: what the application layer needs from the world, as traits the server's
//! adapters implement (the store over SQLite and Postgres, IAM Identity Center over the
//! AWS SDK, the permission set catalog, the scheduler's wake-ups). Unit tests implement
//! them in memory; integration tests run the real adapters against real peers.

use std::error::Error as StdError;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, EventFilter, NewEvent};
use crate::domain::{
    ApiToken, CliLogin, IdcLookup, OsUser, PermissionSetArn, PrincipalId, Request, RequestId,
    RequestRecord, StateName, User, UserId,
};
use crate::domain::{PendingSlackLink, SlackLink};

/// A failure of an adapter (the database, AWS), carried through the application layer
/// untouched so the edge that called can log it and answer "unavailable".
#[derive(Debug)]
pub struct PortFailure(Box<dyn StdError + Send + Sync>);

impl PortFailure {
    /// Wraps an adapter's error.
    pub fn new(e: impl StdError + Send + Sync + 'static) -> Self {
        PortFailure(Box::new(e))
    }

    /// The adapter's error, when it is an `E`.
    pub fn downcast<E: StdError + 'static>(self) -> Result<E, Self> {
        match self.0.downcast::<E>() {
            Ok(e) => Ok(*e),
            Err(other) => Err(PortFailure(other)),
        }
    }
}

impl std::fmt::Display for PortFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for PortFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// What a port answers.
pub type PortResult<T> = Result<T, PortFailure>;

/// How a person stands with IAM Identity Center in jitgate's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdcStanding {
    /// The IdC user bound to them at first use, if any: every later grant lands there.
    pub bound: Option<PrincipalId>,
    /// How their last sign-in's trusted claims find their IdC user; `None` when that
    /// sign-in predates identity matching.
    pub lookup: Option<IdcLookup>,
}

/// What binding an IdC user to a person came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Bound now, for the first time.
    New,
    /// They were bound to this IdC user already.
    Same,
    /// They are bound to another IdC user (this one): refused until an admin re-binds.
    Other(String),
    /// The IdC user is bound to another person (this jitgate user id): refused.
    Taken(String),
}

/// Which requests a listing asks for, before the rules narrow it to what the person may
/// see. Empty means "no restriction".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Only requests by this person.
    pub requester: Option<UserId>,
    /// Only these profiles.
    pub profiles: Option<Vec<String>>,
    /// Only these states.
    pub states: Vec<StateName>,
    /// Only requests created before this (paging, newest first).
    pub created_before: Option<DateTime<Utc>>,
    /// At most this many (the store caps it too).
    pub limit: i64,
}

/// What the store is asked to list: a [`Listing`] and, for anyone but an admin, whose
/// requests they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuery {
    /// What was asked for.
    pub listing: Listing,
    /// Restricts to what a non-admin may see: their own requests (this id) and those
    /// of the profiles they approve.
    pub visible_to: Option<(UserId, Vec<String>)>,
}

/// The store: where requests, people and the audit trail are kept.
pub trait Store: Send + Sync + 'static {
    /// One write transaction.
    type Tx: Transaction;

    /// Opens a write transaction.
    fn begin(&self) -> impl Future<Output = PortResult<Self::Tx>> + Send;

    /// A request as last committed.
    fn request(
        &self,
        id: RequestId,
    ) -> impl Future<Output = PortResult<Option<RequestRecord>>> + Send;

    /// Requests matching `query`, newest first.
    fn list(
        &self,
        query: &RequestQuery,
    ) -> impl Future<Output = PortResult<Vec<RequestRecord>>> + Send;

    /// Requests waiting for `approver`'s decision in `profiles` (pending, or with an
    /// extension asked for), not their own and not approved by them already: oldest
    /// first, requesters taking turns; `offset`/`limit` page through it.
    fn approval_queue(
        &self,
        approver: &UserId,
        profiles: &[String],
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = PortResult<Vec<RequestRecord>>> + Send;

    /// The person jitgate knows as `user`, as their provider last described them.
    fn person(&self, user: &UserId) -> impl Future<Output = PortResult<Option<User>>> + Send;

    /// Up to two people whose email is `email`, compared without case (two: the email
    /// names no one person).
    fn people_by_email(&self, email: &str) -> impl Future<Output = PortResult<Vec<User>>> + Send;

    /// `user`'s API tokens (records, never secrets), newest first.
    fn tokens_of(&self, user: &UserId) -> impl Future<Output = PortResult<Vec<ApiToken>>> + Send;

    /// The owner of the live token whose secret hashes to `hash` (and marks it used at
    /// `now`); `None` for an unknown, expired or revoked one.
    fn token_owner(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<Option<User>>> + Send;

    /// Uses up the CLI login code whose secret hashes to `hash`, in one statement: what
    /// it stands for if it exists, is unexpired at `now` and was not used before.
    fn redeem_cli_login(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<Option<CliLogin>>> + Send;

    /// The audit events of one request, in order.
    fn events_of_request(
        &self,
        request_id: &str,
    ) -> impl Future<Output = PortResult<Vec<AuditEvent>>> + Send;

    /// Up to `limit` events at or after `since_millis` with `seq > after`, in order.
    fn events_since(
        &self,
        since_millis: i64,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = PortResult<Vec<AuditEvent>>> + Send;

    /// Up to `limit` events matching `filter` with `after < seq <= upto`, in order.
    fn search_events(
        &self,
        filter: &EventFilter<'_>,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> impl Future<Output = PortResult<Vec<AuditEvent>>> + Send;

    /// The sequence number of the first event at or after `since_millis`, if any.
    fn first_event_since(
        &self,
        since_millis: i64,
    ) -> impl Future<Output = PortResult<Option<i64>>> + Send;

    /// The sequence number of the last event (0 for an empty trail).
    fn last_event(&self) -> impl Future<Output = PortResult<i64>> + Send;

    /// How `user` stands with IdC; `None` for someone jitgate has no record of.
    fn idc_standing(
        &self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<IdcStanding>>> + Send;

    /// The Slack account `user` linked, if any.
    fn slack_link_of(
        &self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<SlackLink>>> + Send;

    /// The code sent to `user`'s Slack member, if one was (expired or not).
    fn pending_slack_link(
        &self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<PendingSlackLink>>> + Send;

    /// The person who linked Slack member `member`.
    fn person_by_slack_member(
        &self,
        member: &str,
    ) -> impl Future<Output = PortResult<Option<UserId>>> + Send;
}

/// A write transaction: everything one use case changes, with its audit events, commits
/// together or not at all (dropping it uncommitted rolls back). Locks are taken in one
/// order everywhere (the person's principal, then the request, the user row, the audit
/// head last) so no two transactions wait on each other.
pub trait Transaction: Send {
    /// Locks the IdC principal's row (created if new): the order every writer follows.
    fn lock_principal(
        &mut self,
        principal: &PrincipalId,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// The IdC user a request is for, read before locking it.
    fn principal_of(
        &mut self,
        id: RequestId,
    ) -> impl Future<Output = PortResult<Option<PrincipalId>>> + Send;

    /// The request, locked for this transaction.
    fn lock_request(
        &mut self,
        id: RequestId,
    ) -> impl Future<Output = PortResult<Option<RequestRecord>>> + Send;

    /// Stores a new request.
    fn insert_request(
        &mut self,
        record: &RequestRecord,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Saves a changed request, changed at `now`.
    fn save_request(
        &mut self,
        record: &RequestRecord,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Marks the principal's AWS state as changed, for the scheduler to converge.
    fn touch_principal(
        &mut self,
        principal: &PrincipalId,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// How many open requests `requester` has, counted up to `cap`.
    fn open_count(
        &mut self,
        requester: &UserId,
        cap: i64,
    ) -> impl Future<Output = PortResult<i64>> + Send;

    /// An open principal-tag request of `requester` or `principal` for another OS user
    /// than `os_user`, if any (AWS can enforce one run-as user per IdC user at a time).
    fn run_as_conflict(
        &mut self,
        requester: &UserId,
        principal: &PrincipalId,
        os_user: &OsUser,
    ) -> impl Future<Output = PortResult<Option<Request>>> + Send;

    /// Binds `principal` to `user` unless either is bound otherwise.
    fn bind_idc(
        &mut self,
        user: &UserId,
        principal: &PrincipalId,
    ) -> impl Future<Output = PortResult<Binding>> + Send;

    /// Records a sign-in: creates the person or updates what the provider said of them.
    /// Answers their groups as stored before, read under the row's lock (`None` for a
    /// person new to jitgate).
    fn record_person(
        &mut self,
        user: &User,
    ) -> impl Future<Output = PortResult<Option<Vec<String>>>> + Send;

    /// Removes `user`'s IdC binding; answers the IdC user they were bound to.
    fn unbind_idc(
        &mut self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<String>>> + Send;

    /// How many live API tokens `user` holds at `now`.
    fn live_tokens(
        &mut self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<i64>> + Send;

    /// Stores a new token by the hash of its secret.
    fn insert_token(
        &mut self,
        token: &ApiToken,
        hash: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Revokes `user`'s live token `id` at `now`; `false` when there is none.
    fn revoke_token(
        &mut self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<bool>> + Send;

    /// Stores a CLI login code by its hash, redeemable until `expires_at`.
    fn insert_cli_login(
        &mut self,
        hash: &str,
        login: &CliLogin,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// The code sent to `user`'s Slack member and its hash, locked for this transaction.
    fn pending_slack_link(
        &mut self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<(PendingSlackLink, String)>>> + Send;

    /// Stores (or replaces) the code sent to `user`'s Slack member, by its hash.
    fn put_pending_slack_link(
        &mut self,
        user: &UserId,
        pending: &PendingSlackLink,
        hash: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Forgets the code sent to `user`'s Slack member.
    fn drop_pending_slack_link(
        &mut self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Links `user` to Slack member `member` at `now`, replacing `user`'s earlier link;
    /// answers who had `member` before (their link is removed), if someone else did.
    fn link_slack(
        &mut self,
        user: &UserId,
        member: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<Option<UserId>>> + Send;

    /// Removes `user`'s link; answers the member it was to.
    fn unlink_slack(
        &mut self,
        user: &UserId,
    ) -> impl Future<Output = PortResult<Option<String>>> + Send;

    /// Appends an audit event, chained after the last.
    fn append(&mut self, event: NewEvent) -> impl Future<Output = PortResult<()>> + Send;

    /// Commits.
    fn commit(self) -> impl Future<Output = PortResult<()>> + Send;
}

/// IAM Identity Center's directory of people.
pub trait Directory: Send + Sync + 'static {
    /// The identity-store user `lookup` finds; `None` when there is none.
    fn find_user(
        &self,
        lookup: &IdcLookup,
    ) -> impl Future<Output = PortResult<Option<PrincipalId>>> + Send;
}

/// Why no permission set can be named for a grant now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoPermissionSet(pub String);

/// The permission sets each profile's grants land on, as looked up in IdC.
pub trait PermissionSets: Send + Sync + 'static {
    /// The permission set for a grant of `profile` as `os_user`.
    fn arn_for(&self, profile: &str, os_user: &OsUser)
    -> Result<PermissionSetArn, NoPermissionSet>;
}

/// Wake-ups for the work that follows a change (the server's scheduler): committed
/// changes are found by it anyway, a wake-up only saves the wait.
pub trait Signals: Send + Sync + 'static {
    /// A person's desired AWS state changed.
    fn converge(&self);
    /// The set of active grants or their end changed.
    fn expiry(&self);
}

/// The instances in the profiles' accounts and regions, as last looked up (the server
/// keeps them in memory and refreshes them in the background).
pub trait Inventory: Send + Sync + 'static {
    /// The targets known, and when they were looked up; `None` until the first lookup
    /// finished.
    fn snapshot(&self) -> Option<InventorySnapshot>;
}

/// One lookup of every target.
#[derive(Debug, Clone)]
pub struct InventorySnapshot {
    /// Every instance found in the profiles' accounts and regions.
    pub targets: std::sync::Arc<Vec<crate::domain::Target>>,
    /// When the lookup finished.
    pub looked_up_at: DateTime<Utc>,
}
