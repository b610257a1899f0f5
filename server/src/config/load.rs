//! Reading a config: TOML text, then `JITGATE_*` environment overrides, then typed
//! deserialization (which names the key at fault) and the cross-field rules.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::Config;

/// One thing wrong with a config, with the key that holds it (`profiles[0].max_duration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a config could not be loaded; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    format!("invalid configuration:\n{}", lines.join("\n"))
}

/// Loads `path`, applies the process environment's `JITGATE_*` overrides and validates.
pub fn load_from_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_from_str(&text, std::env::vars())
}

/// Parses `text`, applies overrides from `env` (only `JITGATE_*` names are looked at) and
/// validates the result.
pub fn load_from_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::Invalid(vec![
            Problem {
                key: "(file)".into(),
                message: format!("not valid TOML: {}", e.message().trim()),
            }
            .with_span(text, e.span()),
        ])
    })?;
    let mut problems = apply_env_overrides(&mut table, env);
    match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table)) {
        Ok(config) => {
            problems.extend(super::validate::check(&config));
            if problems.is_empty() {
                return Ok(config);
            }
        }
        Err(e) => {
            let key = e.path().to_string();
            // serde quotes the value it could not read: never a secret's.
            let message = if is_secret(&key) {
                "must be text (quote it in the file); its value is not shown".to_owned()
            } else {
                e.inner().message().trim().to_string()
            };
            problems.push(Problem { key, message });
        }
    }
    Err(ConfigError::Invalid(problems))
}

/// Keys that hold secrets: read from the environment as text whatever they look like
/// (`12345` stays the string "12345"), and never quoted in an error.
const SECRET_KEYS: &[&str] = &[
    "database.url",
    "oidc.client_secret",
    "audit.key",
    "audit.previous_keys",
    "slack.signing_secret",
    "slack.bot_token",
    "slack.app_token",
];

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// Environment sections that may be overridden, and so the only `JITGATE_` prefixes read.
const SECTIONS: &[&str] = &[
    "server",
    "database",
    "aws",
    "scheduler",
    "auth",
    "audit",
    "oidc",
    "slack",
];

/// `JITGATE_DATABASE_URL=...` sets `[database] url`. Values that read as TOML scalars
/// (numbers, booleans) keep that type; anything else is a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("JITGATE_"))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let rest = name["JITGATE_".len()..].to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|s| {
            rest.strip_prefix(s)
                .and_then(|k| k.strip_prefix('_'))
                .map(|k| (*s, k.to_string()))
        }) else {
            // Other JITGATE_ variables (JITGATE_CONFIG, JITGATE_LOG) belong to the CLI.
            continue;
        };
        let entry = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            problems.push(Problem {
                key: section.into(),
                message: format!("must be a table to apply {name}"),
            });
            continue;
        };
        let value = if is_secret(&format!("{section}.{key}")) {
            toml::Value::String(value)
        } else {
            scalar(&value)
        };
        section_table.insert(key, value);
    }
    problems
}

fn scalar(value: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Probe {
        v: toml::Value,
    }
    match toml::from_str::<Probe>(&format!("v = {value}")) {
        Ok(Probe { v }) if !v.is_table() && !v.is_array() && !v.is_datetime() => v,
        _ => toml::Value::String(value.to_owned()),
    }
}

impl Problem {
    fn with_span(mut self, text: &str, span: Option<std::ops::Range<usize>>) -> Self {
        if let Some(span) = span {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            self.key = format!("line {line}");
        }
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/jitgate.example.toml");

    const KEY: &str = "unit-test-audit-key-0123456789abcdef";

    /// The environment a deployment gives: the audit key, and `extra`.
    fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![("JITGATE_AUDIT_KEY".to_owned(), KEY.to_owned())];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    fn problems(text: &str) -> Vec<Problem> {
        match load_from_str(text, env(&[])) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => panic!("unexpected {e}"),
        }
    }

    fn keys(text: &str) -> Vec<String> {
        problems(text).into_iter().map(|p| p.key).collect()
    }

    /// The example with one line replaced, so each test shows only what it breaks.
    fn example_with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "example lacks {from}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let config = load_from_str(EXAMPLE, env(&[])).unwrap();
        assert_eq!(config.profiles.len(), 2);
        assert_eq!(config.profiles[0].max_duration.get().as_secs(), 4 * 3600);
    }

    #[test]
    fn environment_overrides_file_values_with_their_types() {
        let env = env(&[
            ("JITGATE_DATABASE_URL", "postgres://u:p@h/d"),
            ("JITGATE_SCHEDULER_WORKERS", "3"),
            ("JITGATE_AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("JITGATE_CONFIG", "ignored.toml"),
        ]);
        let config = load_from_str(EXAMPLE, env).unwrap();
        assert_eq!(config.database.url.expose(), "postgres://u:p@h/d");
        assert_eq!(config.scheduler.workers, 3);
        assert_eq!(
            config.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn regions_and_the_member_role_are_checked() {
        let text = example_with(
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\", \"eu-west\", \"US-EAST-1\", \"us-gov-west-1\"]",
        );
        let p = problems(&text);
        assert_eq!(keys_of(&p), ["profiles[0].regions", "profiles[0].regions"]);
        assert!(p[0].message.contains("`eu-west`"), "{}", p[0].message);
        let p = problems(&example_with(
            "member_role_name = \"JitGateMember\"",
            "member_role_name = \"role/JitGateMember\"",
        ));
        assert_eq!(keys_of(&p), ["aws.member_role_name"]);
        let config = load_from_str(EXAMPLE, env(&[])).unwrap();
        assert_eq!(config.profiles[0].regions_or("x"), ["us-east-1"]);
        assert_eq!(config.profiles[1].regions_or("us-east-1"), ["us-east-1"]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let p = problems(&example_with("max_connections = 10", "max_conections = 10"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "database.max_conections");
        assert!(
            p[0].message.contains("`max_connections`"),
            "{}",
            p[0].message
        );
        let p = problems(&example_with("auto_approve = false", "auto_aprove = false"));
        assert_eq!(p[0].key, "profiles[0].auto_aprove");
    }

    #[test]
    fn an_in_memory_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://file:x?mode=memory"] {
            let p = problems(&example_with(
                "url = \"sqlite://jitgate.db\"",
                &format!("url = \"{url}\""),
            ));
            assert_eq!(keys_of(&p), ["database.url"], "{url}");
            assert!(p[0].message.contains("use a file"), "{}", p[0].message);
        }
    }

    #[test]
    fn a_percent_encoded_sqlite_path_is_refused() {
        let p = problems(&example_with(
            "url = \"sqlite://jitgate.db\"",
            "url = \"sqlite:///var/lib/my%20jitgate.db\"",
        ));
        assert_eq!(keys_of(&p), ["database.url"]);
        assert!(p[0].message.contains("without `%`"), "{}", p[0].message);
    }

    fn keys_of(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn a_secret_that_looks_like_a_number_is_text_and_never_printed() {
        let text = example_with(
            "url = \"sqlite://jitgate.db\"",
            "url = \"sqlite://jitgate.db\"",
        );
        let with_oidc = format!(
            "{text}\n[oidc]\nissuer = \"https://login.example.com\"\nclient_id = \"jitgate\"\nclient_secret = \"x\"\n"
        );
        let config = load_from_str(
            &with_oidc,
            env(&[("JITGATE_OIDC_CLIENT_SECRET", "987654321")]),
        )
        .unwrap();
        assert_eq!(config.oidc.unwrap().client_secret.expose(), "987654321");
        // Written as a bare number in the file: refused without repeating it.
        let numeric = with_oidc.replace("client_secret = \"x\"", "client_secret = 987654321");
        let p = problems(&numeric);
        assert_eq!(p[0].key, "oidc.client_secret");
        assert!(!p[0].message.contains("987654321"), "{}", p[0].message);
    }

    #[test]
    fn slack_secrets_come_from_the_environment_and_are_checked() {
        let text = example_with(
            "url = \"sqlite://jitgate.db\"",
            "url = \"sqlite://jitgate.db\"",
        );
        let with_slack =
            format!("{text}\n[slack]\nmode = \"http\"\nsigning_secret = \"\"\nbot_token = \"\"\n");
        let config = load_from_str(
            &with_slack,
            env(&[
                (
                    "JITGATE_SLACK_SIGNING_SECRET",
                    "8f742231b10e8888abcd99yyyzzz85a5",
                ),
                ("JITGATE_SLACK_BOT_TOKEN", "xoxb-1-2-3"),
            ]),
        )
        .unwrap();
        let slack = config.slack.unwrap();
        assert_eq!(slack.bot_token.expose(), "xoxb-1-2-3");
        assert_eq!(slack.api_base_url, "https://slack.com/api");
        let p = problems(&with_slack.replace("bot_token = \"\"", "bot_token = \"xoxp-user\""));
        assert_eq!(keys_of(&p), ["slack.signing_secret", "slack.bot_token"]);
        assert!(!p.iter().any(|p| p.message.contains("xoxp-user")), "{p:?}");
        // Socket Mode, the default: the app-level token from the environment.
        let socket = format!("{text}\n[slack]\nbot_token = \"xoxb-1\"\n");
        let p = problems(&socket);
        assert_eq!(keys_of(&p), ["slack.app_token"]);
        assert!(p[0].message.contains("JITGATE_SLACK_APP_TOKEN"), "{p:?}");
        let config = load_from_str(
            &socket,
            env(&[("JITGATE_SLACK_APP_TOKEN", "xapp-1-A1-2-abc")]),
        )
        .unwrap();
        let slack = config.slack.unwrap();
        assert_eq!(slack.mode, super::super::SlackMode::Socket);
        assert_eq!(slack.app_token.unwrap().expose(), "xapp-1-A1-2-abc");
        let p = problems(&format!(
            "{text}\n[slack]\napp_token = \"xoxb-9\"\nbot_token = \"xoxb-1\"\n"
        ));
        assert_eq!(keys_of(&p), ["slack.app_token"]);
        assert!(!p[0].message.contains("xoxb-9"), "{p:?}");
    }

    #[test]
    fn the_audit_key_is_required_long_and_never_printed() {
        let missing = match load_from_str(EXAMPLE, Vec::new()) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("a missing key was accepted: {other:?}"),
        };
        assert_eq!(keys_of(&missing), ["audit.key"]);
        assert!(missing[0].message.contains("JITGATE_AUDIT_KEY"));

        let short = "12345678901234567890";
        let p = match load_from_str(
            EXAMPLE,
            [("JITGATE_AUDIT_KEY".to_owned(), short.to_owned())],
        ) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("a short key was accepted: {other:?}"),
        };
        assert_eq!(keys_of(&p), ["audit.key"]);
        assert!(!p[0].message.contains(short), "{}", p[0].message);

        let numeric = "1234567890123456789012345678901234567890";
        let config = load_from_str(
            EXAMPLE,
            [("JITGATE_AUDIT_KEY".to_owned(), numeric.to_owned())],
        )
        .unwrap();
        assert_eq!(config.audit.key.as_ref().map(|k| k.expose()), Some(numeric));
        let shown = toml::to_string(&config).unwrap();
        assert!(!shown.contains(numeric), "{shown}");
    }

    #[test]
    fn bad_durations_name_the_key_and_the_fix() {
        let p = problems(&example_with(
            "max_duration = \"4h\"",
            "max_duration = \"four hours\"",
        ));
        assert_eq!(p[0].key, "profiles[0].max_duration");
        assert!(p[0].message.contains("1h30m"), "{}", p[0].message);
        assert_eq!(
            keys(&example_with(
                "max_duration = \"4h\"",
                "max_duration = \"0s\""
            )),
            ["profiles[0].max_duration"]
        );
    }

    #[test]
    fn a_minimum_duration_over_the_maximum_or_under_a_second_is_refused() {
        for min in ["8h", "500ms"] {
            assert_eq!(
                keys(&example_with(
                    "min_duration = \"15m\"",
                    &format!("min_duration = \"{min}\"")
                )),
                ["profiles[0].min_duration"],
                "{min}"
            );
        }
    }

    #[test]
    fn empty_approver_lists_are_refused() {
        assert_eq!(
            keys(&example_with(
                "approver_groups = [\"sre\"]",
                "approver_groups = []"
            )),
            ["profiles[0].approver_groups"]
        );
    }

    #[test]
    fn invalid_os_users_are_named() {
        let p = problems(&example_with(
            "allowed_os_users = [\"app\", \"readonly\"]",
            "allowed_os_users = [\"app\", \"root\"]",
        ));
        assert_eq!(p[0].key, "profiles[0].allowed_os_users[1]");
        assert!(p[0].message.contains("root"), "{}", p[0].message);
    }

    #[test]
    fn more_approvals_than_approvers_is_refused() {
        let text = example_with(
            "approver_groups = [\"sre\"]\napprovals_required = 1",
            "approvers = [\"bob\", \"carol\"]\napprovals_required = 3",
        );
        assert_eq!(keys(&text), ["profiles[0].approvals_required"]);
        let text = example_with(
            "approver_groups = [\"sre\"]\napprovals_required = 1",
            "approvers = [\"bob\", \"carol\"]\napprovals_required = 2",
        );
        assert!(keys(&text).is_empty());
    }

    #[test]
    fn five_field_cron_gets_a_clear_fix() {
        let p = problems(&example_with(
            "sweep = \"0 * * * * *\"",
            "sweep = \"*/5 * * * *\"",
        ));
        assert_eq!(p[0].key, "scheduler.sweep");
        assert!(
            p[0].message.contains("write `0 */5 * * * *`"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn permission_set_must_fit_the_run_as_mode() {
        assert_eq!(
            keys(&example_with(
                "permission_set = \"JitSsm-{os_user}\"",
                "permission_set = \"JitSsm\""
            )),
            ["profiles[1].permission_set"]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = example_with("region = \"us-east-1\"", "region = \"\"")
            .replacen("workers = 16", "workers = 0", 1)
            .replacen(
                "requester_groups = [\"developers\"]",
                "requester_groups = []",
                1,
            );
        assert_eq!(
            keys(&text),
            [
                "aws.region",
                "scheduler.workers",
                "profiles[0].requester_groups"
            ]
        );
    }

    #[test]
    fn toml_syntax_errors_give_the_line() {
        let p = problems("[server]\nlisten = \n");
        assert_eq!(p[0].key, "line 2");
    }

    #[test]
    fn duplicate_profile_names_are_refused() {
        let text = EXAMPLE.replacen("name = \"staging\"", "name = \"prod-web\"", 1);
        assert_eq!(keys(&text), ["profiles[1].name"]);
    }
}
