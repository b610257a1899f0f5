//! Rules that span fields or need more than a type to check. Each problem names its key
//! and says what to write instead.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::str::FromStr;

use super::{Config, OS_USER_PLACEHOLDER, ProfileConfig, SlackMode, load::Problem};
use crate::domain::RunAsMode;

/// Longest grant a profile may allow; beyond a month "just in time" has lost its meaning.
const MAX_PROFILE_DURATION_SECS: u64 = 31 * 24 * 3600;

/// Every rule broken by `config`; empty when it is good.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut out = Problems::default();
    if config.server.listen.parse::<SocketAddr>().is_err() {
        out.add(
            "server.listen",
            format!(
                "`{}` is not a socket address; write it like 127.0.0.1:8080",
                config.server.listen
            ),
        );
    }
    let server = &config.server;
    if server.header_read_timeout.get().is_zero() || server.request_timeout.get().is_zero() {
        out.add(
            "server.header_read_timeout",
            "header_read_timeout and request_timeout must be longer than zero",
        );
    }
    if server.max_connections < 16 {
        out.add("server.max_connections", "must be at least 16");
    }
    let public = config.server.public_url.trim_end_matches('/');
    if !(public.starts_with("http://") || public.starts_with("https://")) {
        out.add(
            "server.public_url",
            format!("`{public}` must be the http(s):// URL people use to reach jitgate"),
        );
    }
    if let Some(oidc) = &config.oidc {
        if !(oidc.issuer.starts_with("https://") || oidc.issuer.starts_with("http://")) {
            out.add(
                "oidc.issuer",
                format!("`{}` must be an http(s):// URL", oidc.issuer),
            );
        }
        if oidc.client_id.trim().is_empty() {
            out.add("oidc.client_id", "must not be empty");
        }
        if oidc.groups_claim.trim().is_empty() {
            out.add(
                "oidc.groups_claim",
                "must name the claim that lists groups (e.g. groups)",
            );
        }
    }
    if let Some(slack) = &config.slack {
        let api = &slack.api_base_url;
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            out.add(
                "slack.api_base_url",
                format!("`{api}` must be an http(s):// URL (Slack's is https://slack.com/api)"),
            );
        }
        match slack.mode {
            SlackMode::Http => {
                if slack
                    .signing_secret
                    .as_ref()
                    .is_none_or(|s| s.expose().trim().is_empty())
                {
                    out.add(
                        "slack.signing_secret",
                        "is needed with mode = \"http\": the Slack app's signing secret \
                         (Basic Information), e.g. in JITGATE_SLACK_SIGNING_SECRET",
                    );
                }
            }
            SlackMode::Socket => {
                if !slack
                    .app_token
                    .as_ref()
                    .is_some_and(|t| t.expose().starts_with("xapp-"))
                {
                    out.add(
                        "slack.app_token",
                        "is needed with mode = \"socket\" (the default): an app-level token \
                         (xapp-..., scope connections:write, from Basic Information), e.g. in \
                         JITGATE_SLACK_APP_TOKEN; or set mode = \"http\" to keep Slack posting \
                         to /slack/interactions",
                    );
                }
            }
        }
        if let Some(channel) = &slack.channel
            && !is_channel(channel)
        {
            out.add(
                "slack.channel",
                format!("`{channel}` is not a Slack channel: give its id (C0123456789) or #name"),
            );
        }
        if let Some(after) = &slack.remind_after
            && after.get() < std::time::Duration::from_secs(60)
        {
            out.add(
                "slack.remind_after",
                "must be at least 1m (how long a request waits before approvers are reminded)",
            );
        }
        if let Some(channel) = &slack.escalation_channel {
            if !is_channel(channel) {
                out.add(
                    "slack.escalation_channel",
                    format!(
                        "`{channel}` is not a Slack channel: give its id (C0123456789) or #name"
                    ),
                );
            }
            if slack.remind_after.is_none() {
                out.add(
                    "slack.escalation_channel",
                    "needs slack.remind_after: requests are escalated after twice that",
                );
            }
        }
        if slack.expiring_soon.get() < std::time::Duration::from_secs(60) {
            out.add(
                "slack.expiring_soon",
                "must be at least 1m (how long before a grant ends its requester is told)",
            );
        }
        if !slack.bot_token.expose().starts_with("xoxb-") {
            out.add(
                "slack.bot_token",
                "must be the app's bot token (xoxb-...), from OAuth & Permissions",
            );
        }
    }
    let auth = &config.auth;
    let step_up = auth.step_up_max_age.get();
    if step_up < std::time::Duration::from_secs(30)
        || step_up > std::time::Duration::from_secs(3600)
    {
        out.add(
            "auth.step_up_max_age",
            "must be between 30s and 1h (how recent a sign-in approves for a step_up profile)",
        );
    }
    if auth.session_idle.get().is_zero() || auth.session_idle.get() > auth.session_max.get() {
        out.add(
            "auth.session_idle",
            "must be longer than zero and at most auth.session_max",
        );
    }
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
    match auth.idc_match {
        super::IdcMatch::Claim if blank(&auth.idc_match_claim) => out.add(
            "auth.idc_match_claim",
            "idc_match = \"claim\" needs the claim to match IdC userNames with, e.g. \
             idc_match_claim = \"aws_user\" (one people cannot edit at the provider)",
        ),
        super::IdcMatch::ExternalId if blank(&auth.idc_external_id_issuer) => out.add(
            "auth.idc_external_id_issuer",
            "idc_match = \"external_id\" needs the issuer your SCIM provisioning records \
             in IdC users' external ids",
        ),
        _ => {}
    }
    if auth.claims_max_age.get().is_zero() {
        out.add("auth.claims_max_age", "must be longer than zero, e.g. 15m");
    }
    if auth.max_open_requests == 0 || auth.max_tokens == 0 {
        out.add(
            "auth.max_open_requests",
            "max_open_requests and max_tokens must be at least 1",
        );
    }
    let url = config.database.url.expose();
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        out.add(
            "database.url",
            "must start with sqlite:// (a file) or postgres:// (a server)",
        );
    }
    if url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")) {
        out.add(
            "database.url",
            "an in-memory SQLite database loses every grant, and the revocations owed, when \
             the server stops: use a file, e.g. sqlite:///var/lib/jitgate/jitgate.db",
        );
    }
    if jitgate_core::parse::sqlite_path(url).is_some_and(|path| path.contains(['%', '#'])) {
        out.add(
            "database.url",
            "write the SQLite path as is, without `%` or `#` (percent-encoding is not decoded)",
        );
    }
    if config.database.max_connections == 0 {
        out.add("database.max_connections", "must be at least 1");
    }
    check_aws(config, &mut out);
    check_scheduler(config, &mut out);
    check_audit(config, &mut out);
    if config.profiles.is_empty() {
        out.add(
            "profiles",
            "no [[profiles]] configured: add at least one (see deploy/jitgate.example.toml)",
        );
    }
    let mut names = HashSet::new();
    for (i, profile) in config.profiles.iter().enumerate() {
        if !names.insert(profile.name.as_str()) {
            out.add(
                format!("profiles[{i}].name"),
                format!("profile `{}` is defined twice", profile.name),
            );
        }
        check_profile(&format!("profiles[{i}]"), profile, &mut out);
    }
    out.0
}

fn check_audit(config: &Config, out: &mut Problems) {
    use crate::audit::MIN_KEY_CHARS;
    let audit = &config.audit;
    match audit.key.as_ref().map(|k| k.expose().trim().chars().count()) {
        None | Some(0) => out.add(
            "audit.key",
            "missing: set JITGATE_AUDIT_KEY to a random key of at least 32 characters \
             (openssl rand -hex 32); it signs the audit trail and is never stored in the \
             database",
        ),
        Some(n) if n < MIN_KEY_CHARS => out.add(
            "audit.key",
            format!("is {n} characters long; use at least {MIN_KEY_CHARS} random ones (openssl rand -hex 32)"),
        ),
        Some(_) => {}
    }
    let previous = audit.previous_keys.as_ref().map_or("", |k| k.expose());
    if previous
        .split(',')
        .map(str::trim)
        .any(|k| !k.is_empty() && k.chars().count() < MIN_KEY_CHARS)
    {
        out.add(
            "audit.previous_keys",
            format!("each key (comma-separated) must be at least {MIN_KEY_CHARS} characters"),
        );
    }
    if audit.head_log_every.get().is_zero() {
        out.add("audit.head_log_every", "must be longer than zero, e.g. 5m");
    }
}

fn check_aws(config: &Config, out: &mut Problems) {
    let aws = &config.aws;
    if aws.region.trim().is_empty() {
        out.add("aws.region", "must not be empty (e.g. us-east-1)");
    }
    if let Some(url) = &aws.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        out.add(
            "aws.endpoint_url",
            format!("`{url}` must be an http:// or https:// URL"),
        );
    }
    if let Some(arn) = &aws.instance_arn
        && !arn.starts_with("arn:aws:sso:::instance/")
    {
        out.add(
            "aws.instance_arn",
            format!("`{arn}` is not an IdC instance ARN (arn:aws:sso:::instance/ssoins-...)"),
        );
    }
    if aws.instance_arn.is_some() != aws.identity_store_id.is_some() {
        out.add(
            "aws.identity_store_id",
            "set both instance_arn and identity_store_id, or neither (both are then discovered)",
        );
    }
    if aws.run_as_attribute.trim().is_empty() {
        out.add(
            "aws.run_as_attribute",
            "must name the identity-store user attribute mapped to SSMSessionRunAs (e.g. nickName)",
        );
    }
    if aws.tps_limit == 0 {
        out.add("aws.tps_limit", "must be at least 1");
    }
    if aws.max_outstanding_assignments == 0 {
        out.add("aws.max_outstanding_assignments", "must be at least 1");
    }
    if !(1..=20).contains(&aws.max_attempts) {
        out.add("aws.max_attempts", "must be between 1 and 20");
    }
    if aws.operation_timeout.get().is_zero() {
        out.add("aws.operation_timeout", "must be longer than zero");
    }
    if aws.inventory_refresh.get() < std::time::Duration::from_secs(10) {
        out.add(
            "aws.inventory_refresh",
            "must be at least 10s (each lookup calls every member account and region)",
        );
    }
    if let Some(url) = &aws.sso_start_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        out.add(
            "aws.sso_start_url",
            format!(
                "`{url}` must be the AWS access portal URL, like https://d-1234567890.awsapps.com/start"
            ),
        );
    }
    if let Some(region) = &aws.sso_region
        && !is_region(region)
    {
        out.add(
            "aws.sso_region",
            format!("`{region}` is not an AWS region name (like eu-west-1)"),
        );
    }
    if let Some(name) = &aws.sso_session
        && (name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        out.add(
            "aws.sso_session",
            "must be the sso-session name of the AWS CLI config: no spaces",
        );
    }
    if !is_role_name(&aws.member_role_name) {
        out.add(
            "aws.member_role_name",
            format!(
                "`{}` is not an IAM role name (1-64 of letters, digits and +=,.@_-)",
                aws.member_role_name
            ),
        );
    }
}

/// An IAM role name: 1-64 characters of `[\w+=,.@-]`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// An AWS region name such as `eu-west-1` or `us-gov-west-1`.
fn is_region(name: &str) -> bool {
    let mut parts = name.split('-');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    first.len() == 2
        && first.chars().all(|c| c.is_ascii_lowercase())
        && rest.len() >= 2
        && rest
            .last()
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && rest
            .iter()
            .take(rest.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

fn check_scheduler(config: &Config, out: &mut Problems) {
    let s = &config.scheduler;
    if let Err(message) = parse_cron(&s.sweep) {
        out.add("scheduler.sweep", message);
    }
    if s.poll_interval.get() < std::time::Duration::from_millis(100) {
        out.add(
            "scheduler.poll_interval",
            "must be at least 100ms (it is how often other replicas' changes are looked for)",
        );
    }
    if s.lease.get() < std::time::Duration::from_secs(1)
        || s.lease.get() > std::time::Duration::from_secs(3600)
    {
        out.add(
            "scheduler.lease",
            "must be between 1s and 1h (a dead replica's work waits this long)",
        );
    }
    if s.poll_interval.get() > std::time::Duration::from_secs(3600) {
        out.add("scheduler.poll_interval", "must be at most 1h");
    }
    if let Some(id) = &s.node_id
        && (id.trim().is_empty()
            || id.len() > 200
            || id.contains('#')
            || id.chars().any(char::is_control))
    {
        out.add(
            "scheduler.node_id",
            "must be 1-200 characters without `#` or control characters (e.g. the pod name)",
        );
    }
    if s.workers == 0 {
        out.add("scheduler.workers", "must be at least 1");
    }
    if s.grant_attempts == 0 {
        out.add("scheduler.grant_attempts", "must be at least 1");
    }
}

/// Parses a sweep schedule, explaining the seconds-first form that the `cron` crate wants
/// (its own error for a 5-field expression does not say so).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        return Err(format!(
            "`{expr}` has 5 fields; jitgate's cron has seconds first (6 or 7 fields): \
             write `0 {expr}`"
        ));
    }
    cron::Schedule::from_str(expr).map_err(|e| {
        format!("`{expr}` is not a cron expression ({e}); e.g. `0 */5 * * * *` = every 5 minutes")
    })
}

fn check_profile(key: &str, p: &ProfileConfig, out: &mut Problems) {
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 64
        && p.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        out.add(
            format!("{key}.name"),
            format!(
                "`{}` must be 1-64 characters of a-z, 0-9, - and _ (it appears in URLs)",
                p.name
            ),
        );
    }
    if p.accounts.is_empty() {
        out.add(
            format!("{key}.accounts"),
            "list at least one AWS account id",
        );
    }
    check_permission_set(key, p, out);
    for (key_name, value) in &p.targets {
        if key_name.is_empty() || key_name.len() > 128 || value.len() > 256 {
            out.add(
                format!("{key}.targets"),
                format!(
                    "`{key_name}` = `{value}` is not an EC2 tag (key 1-128 characters, value at most 256)"
                ),
            );
        }
    }
    if let Some(channel) = &p.slack_channel
        && !is_channel(channel)
    {
        out.add(
            format!("{key}.slack_channel"),
            format!("`{channel}` is not a Slack channel: give its id (C0123456789) or #name"),
        );
    }
    for region in p.regions.iter().filter(|r| !is_region(r)) {
        out.add(
            format!("{key}.regions"),
            format!("`{region}` is not an AWS region name (e.g. eu-west-1)"),
        );
    }
    if p.allowed_os_users.is_empty() {
        out.add(
            format!("{key}.allowed_os_users"),
            "list at least one OS user (e.g. [\"app\", \"readonly\"])",
        );
    }
    let max = p.max_duration.get();
    if max.is_zero() || max.as_secs() > MAX_PROFILE_DURATION_SECS {
        out.add(
            format!("{key}.max_duration"),
            "must be longer than zero and at most 31 days",
        );
    }
    let min = p.min_duration.get();
    let max_ok = !max.is_zero() && max.as_secs() <= MAX_PROFILE_DURATION_SECS;
    if min < std::time::Duration::from_secs(1) || (max_ok && min > max) {
        out.add(
            format!("{key}.min_duration"),
            format!(
                "must be at least 1s and at most max_duration ({})",
                p.max_duration
            ),
        );
    }
    if p.approval_timeout.get().is_zero() {
        out.add(
            format!("{key}.approval_timeout"),
            "must be longer than zero",
        );
    }
    if p.requester_groups.is_empty() {
        out.add(
            format!("{key}.requester_groups"),
            "list the OIDC groups whose members may request this profile",
        );
    }
    let approvers = p.approver_groups.len() + p.approvers.len();
    if approvers == 0 {
        out.add(
            format!("{key}.approver_groups"),
            "list the OIDC groups (or `approvers`, user ids) who may approve this profile; \
             they also revoke and approve extensions, even with auto_approve",
        );
    }
    if p.approvals_required == 0 {
        out.add(
            format!("{key}.approvals_required"),
            "must be at least 1 (use auto_approve = true for no human approval)",
        );
    }
    // With groups the number of people is unknown here; with only named approvers it is not.
    if p.approver_groups.is_empty()
        && !p.approvers.is_empty()
        && p.approvals_required as usize > p.approvers.len()
    {
        out.add(
            format!("{key}.approvals_required"),
            format!(
                "{} approvals can never be reached with {} approvers listed",
                p.approvals_required,
                p.approvers.len()
            ),
        );
    }
}

fn check_permission_set(key: &str, p: &ProfileConfig, out: &mut Problems) {
    let ps = p.permission_set.trim();
    let field = format!("{key}.permission_set");
    if ps.is_empty() {
        out.add(field, "name the permission set that carries the SSM role");
        return;
    }
    let templated = ps.contains(OS_USER_PLACEHOLDER);
    let is_arn = ps.starts_with("arn:");
    if is_arn && !ps.starts_with("arn:aws:sso:::permissionSet/") {
        out.add(
            field.clone(),
            format!("`{ps}` is not a permission set ARN (arn:aws:sso:::permissionSet/...)"),
        );
    }
    match p.run_as_mode {
        RunAsMode::SessionDocument if !templated => out.add(
            field,
            format!(
                "session-document mode needs one permission set per OS user: \
                 write a name with {OS_USER_PLACEHOLDER}, e.g. \"JitSsm-{OS_USER_PLACEHOLDER}\""
            ),
        ),
        RunAsMode::SessionDocument if is_arn => out.add(
            field,
            "session-document mode takes a permission set name template, not an ARN",
        ),
        RunAsMode::PrincipalTag if templated => out.add(
            field,
            format!(
                "{OS_USER_PLACEHOLDER} only makes sense with run_as_mode = \"session-document\""
            ),
        ),
        _ => {}
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// A channel as `chat.postMessage` takes it: an id (C..., G...) or `#name`.
fn is_channel(text: &str) -> bool {
    let name = text.strip_prefix('#').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
