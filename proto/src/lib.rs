//! Wire types shared by the jitgate server's JSON API and the `jitgate` CLI. Only serde
//! here: no server logic, so the CLI builds without the server's dependencies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a request stands, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Approved,
    Active,
    Ended,
    Denied,
    Cancelled,
    Lapsed,
    Failed,
}

/// An access request as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: String,
    pub requester: String,
    pub profile: String,
    pub account_id: String,
    pub os_user: String,
    pub duration_secs: u64,
    pub reason: String,
    pub ticket: Option<String>,
    pub state: RequestState,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The body of every API error: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, and where when it is one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_omit_an_absent_field() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "invalid".into(),
                message: "duration must be more than zero".into(),
                field: None,
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"error":{"code":"invalid","message":"duration must be more than zero"}}"#
        );
    }
}
