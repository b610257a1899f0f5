//! Retries of AWS calls: throttling, 5xx and transport failures are retried with
//! exponential backoff and full jitter ("Exponential Backoff And Jitter", AWS
//! Architecture Blog); anything else is final at once. The SDK's own retries are off so
//! that every attempt passes through [`Limits`](super::Limits).

use std::future::Future;
use std::time::Duration;

use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use rand::Rng;

use super::AwsError;

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// Error codes that mean "try again later" in IdC and the identity store.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalServerException",
    "ServiceUnavailableException",
    // IdC answers this while another operation on the same assignment is in progress.
    "ConflictException",
];

/// The code recorded when an error carries none (transport failures, timeouts).
const UNKNOWN_CODE: &str = "Unknown";

/// How a failed attempt should be treated.
pub(super) enum Verdict {
    Retry,
    Final,
}

pub(super) fn classify<E: ProvideErrorMetadata, R>(
    err: &SdkError<E, R>,
    status: Option<u16>,
) -> Verdict {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Verdict::Retry
        }
        _ if status.is_some_and(|s| s >= 500 || s == 429) => Verdict::Retry,
        _ if err.code().is_some_and(|c| RETRYABLE_CODES.contains(&c)) => Verdict::Retry,
        _ => Verdict::Final,
    }
}

/// Delay before attempt `attempt + 1`: uniform in [0, min(cap, base * 2^attempt)].
pub(super) fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE.saturating_mul(1 << attempt.min(16)).min(CAP);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// Runs `call` up to `max_attempts` times, waiting `before_each` (the rate limit) before
/// every attempt.
pub(super) async fn with_retries<T, E, R, F, Fut, W, WFut>(
    operation: &'static str,
    max_attempts: u32,
    before_each: W,
    mut call: F,
) -> Result<T, SdkFailure<E, R>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
    R: HasStatus,
    W: Fn() -> WFut,
    WFut: Future<Output = ()>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        before_each().await;
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) => {
                let status = err.raw_response().map(HasStatus::status);
                let retry = matches!(classify(&err, status), Verdict::Retry);
                if !retry || attempt >= max_attempts {
                    return Err(SdkFailure { operation, err });
                }
                tracing::debug!(
                    operation,
                    attempt,
                    code = err.code().unwrap_or(""),
                    "retrying AWS call"
                );
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
}

/// A call that failed for good, with its SDK error kept for inspection.
pub(super) struct SdkFailure<E, R> {
    pub operation: &'static str,
    pub err: SdkError<E, R>,
}

impl<E: ProvideErrorMetadata + std::error::Error, R> SdkFailure<E, R> {
    pub fn code(&self) -> Option<&str> {
        self.err.code()
    }
}

impl<E: ProvideErrorMetadata + std::error::Error, R: HasStatus> From<SdkFailure<E, R>>
    for AwsError
{
    fn from(f: SdkFailure<E, R>) -> Self {
        let code = f.err.code().unwrap_or(UNKNOWN_CODE).to_owned();
        let status = f.err.raw_response().map(HasStatus::status);
        let transient = matches!(classify(&f.err, status), Verdict::Retry);
        let message = match f.err.message() {
            Some(m) => m.to_owned(),
            None => match &f.err {
                SdkError::ServiceError(ctx) => ctx.err().to_string(),
                other => format!("{other}"),
            },
        };
        AwsError::Api {
            operation: f.operation,
            code,
            message,
            transient,
        }
    }
}

/// The HTTP status of a raw response.
pub(super) trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_ssoadmin::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = backoff(attempt);
            assert!(d <= CAP);
            assert!(d <= BASE.saturating_mul(1 << attempt.min(16)));
        }
    }
}
