//! When to retry a failed request and how long to wait first.

use std::time::Duration;

use reqwest::StatusCode;

use super::config::RetryPolicy;

/// The longest single wait honoured; a server asking for more is not retried.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(60);

/// Whether a request that got `status` may be sent again.
pub(super) fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// What to do after failed attempt number `attempt` (0 for the first attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Return the error.
    GiveUp,
}

impl RetryPolicy {
    /// Decides about a retryable failure; `asked` is the server's Retry-After, if any.
    pub(super) fn decide(&self, attempt: u32, asked: Option<Duration>) -> Decision {
        if attempt >= self.max_retries {
            return Decision::GiveUp;
        }
        match asked {
            Some(wait) if wait > MAX_WAIT => Decision::GiveUp,
            Some(wait) => Decision::RetryAfter(wait),
            None => Decision::RetryAfter(self.backoff(attempt)),
        }
    }

    /// Exponential backoff capped at `max_backoff`, with jitter in its upper half.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_backoff);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        }
    }

    fn wait(decision: Decision) -> Duration {
        match decision {
            Decision::RetryAfter(wait) => wait,
            Decision::GiveUp => panic!("expected a retry"),
        }
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let first = wait(policy().decide(0, None));
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later = wait(policy().decide(4, None));
        assert!(later >= Duration::from_millis(250) && later <= Duration::from_millis(500));
    }

    #[test]
    fn the_servers_retry_after_is_honoured() {
        let asked = Some(Duration::from_secs(3));
        assert_eq!(wait(policy().decide(0, asked)), Duration::from_secs(3));
    }

    #[test]
    fn a_wait_longer_than_the_cap_gives_up() {
        let asked = Some(MAX_WAIT + Duration::from_secs(1));
        assert_eq!(policy().decide(0, asked), Decision::GiveUp);
    }

    #[test]
    fn retries_stop_at_the_limit() {
        assert_eq!(policy().decide(5, None), Decision::GiveUp);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for code in [408, 409, 429, 500, 502, 503] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
