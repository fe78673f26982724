//! The metric names and the small functions the client and the app record them with, through
//! the `metrics` facade, and [`Prometheus`], the engine's [`Meter`] over the same; `install`
//! renders them in the Prometheus text format, and `register_known` exports every series known
//! in advance at zero from the first scrape.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::engine::event::PlatformKind;
pub use crate::engine::meter::CallKind;
use crate::engine::meter::{self, Meter};
use crate::engine::ports::{ModelError, ReplyStatus, Usage};

/// Inbound messages queued, by `platform`.
pub const INCOMING: &str = "parley_incoming_messages_total";
/// Finished replies, by `platform` and `outcome` (complete, partial, failed).
pub const REPLIES: &str = "parley_replies_total";
/// Seconds from asking the model to the first visible text, by `platform`.
pub const FIRST_TOKEN: &str = "parley_reply_first_token_seconds";
/// Seconds from asking the model to the reply's final state, by `platform`.
pub const REPLY_TIME: &str = "parley_reply_duration_seconds";
/// Prompt tokens the API reported.
pub const TOKENS_IN: &str = "parley_prompt_tokens_total";
/// Completion tokens the API reported (reasoning included).
pub const TOKENS_OUT: &str = "parley_completion_tokens_total";
/// Prompt tokens served from the provider's cache (divide by prompt tokens for the hit ratio).
pub const TOKENS_CACHED: &str = "parley_cached_prompt_tokens_total";
/// Completions that failed, by `kind` (rate_limited, unauthorized, timeout, ...).
pub const API_ERRORS: &str = "parley_completion_errors_total";
/// Completion requests sent again after a retryable failure.
pub const API_RETRIES: &str = "parley_completion_retries_total";
/// Calls to a platform, by `platform` and `kind` (send, edit, typing).
pub const PLATFORM_CALLS: &str = "parley_platform_calls_total";
/// Platform calls the platform answered with status 429, by `platform` and `kind`.
pub const RATE_LIMITED: &str = "parley_platform_rate_limited_total";
/// Previews that waited behind other calls for the bot-wide budget, and typing skipped while
/// calls waited (Parley's own pacing, not an error), by `platform` and `kind`.
pub const DEFERRED: &str = "parley_platform_deferred_total";
/// Seconds the platforms asked to wait (its `_sum` is the total retry_after), by `platform`.
pub const RETRY_AFTER: &str = "parley_platform_retry_after_seconds";
/// Replies streaming right now.
pub const ACTIVE_STREAMS: &str = "parley_active_streams";
/// Inbound messages waiting in the dispatcher's shared queue.
pub const QUEUE_DEPTH: &str = "parley_queue_depth";
/// Leases this instance holds (chats it may talk to, and the Telegram poll lease); 0 when
/// instances do not coordinate.
pub const INSTANCE_LEASES: &str = "parley_instance_leases";
/// Inbound events stored in the shared inbox and not started yet, over all instances (read at
/// each heartbeat); 0 when instances do not coordinate (nothing is stored).
pub const INBOX_DEPTH: &str = "parley_inbox_depth";
/// Always 1, labelled with the running `version`.
pub const BUILD_INFO: &str = "parley_build_info";

/// Histogram buckets for reply latencies, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0,
];
/// Histogram buckets for platform retry_after waits, in seconds.
const WAIT_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// The engine's meter: what the engine counts, recorded through the `metrics` facade.
#[derive(Debug, Clone, Copy)]
pub struct Prometheus;

impl Meter for Prometheus {
    fn incoming(&self, platform: PlatformKind) {
        incoming(platform);
    }

    fn queue_depth(&self, depth: usize) {
        queue_depth(depth);
    }

    fn stream_started(&self) {
        gauge!(ACTIVE_STREAMS).increment(1.0);
    }

    fn stream_ended(&self) {
        gauge!(ACTIVE_STREAMS).decrement(1.0);
    }

    fn first_token(&self, platform: PlatformKind, after: Duration) {
        first_token(platform, after);
    }

    fn reply_finished(
        &self,
        platform: PlatformKind,
        status: ReplyStatus,
        took: Duration,
        usage: &Usage,
    ) {
        reply_finished(platform, status, took, usage);
    }

    fn completion_error(&self, kind: &'static str) {
        completion_error(kind);
    }

    fn platform_call(&self, platform: PlatformKind, kind: CallKind) {
        platform_call(platform, kind);
    }

    fn rate_limited(&self, platform: PlatformKind, kind: CallKind, retry_after: Duration) {
        rate_limited(platform, kind, retry_after);
    }

    fn deferred(&self, platform: PlatformKind, kind: CallKind) {
        deferred(platform, kind);
    }
}

/// Makes [`Prometheus`] the engine's meter (once per process; later calls change nothing).
pub fn meter_engine() {
    meter::install(&Prometheus);
}

/// A recorder that renders Prometheus text, not installed globally (tests, and `install`).
pub fn recorder() -> Result<metrics_exporter_prometheus::PrometheusRecorder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(RETRY_AFTER.into()), WAIT_BUCKETS)?
        .build_recorder())
}

/// Installs the global recorder and describes every metric; the handle renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    meter_engine();
    describe();
    Ok(handle)
}

/// The `# HELP` lines.
fn describe() {
    describe_counter!(INCOMING, "Inbound messages queued, by platform.");
    describe_counter!(REPLIES, "Finished replies, by platform and outcome.");
    describe_histogram!(
        FIRST_TOKEN,
        "Seconds from asking the model to the first visible text."
    );
    describe_histogram!(
        REPLY_TIME,
        "Seconds from asking the model to the reply's final state."
    );
    describe_counter!(TOKENS_IN, "Prompt tokens the API reported.");
    describe_counter!(TOKENS_OUT, "Completion tokens the API reported.");
    describe_counter!(
        TOKENS_CACHED,
        "Prompt tokens served from the provider's cache."
    );
    describe_counter!(API_ERRORS, "Completions that failed, by kind.");
    describe_counter!(API_RETRIES, "Completion requests retried.");
    describe_counter!(PLATFORM_CALLS, "Platform calls, by platform and kind.");
    describe_counter!(
        RATE_LIMITED,
        "Platform calls the platform answered with status 429, by platform and kind."
    );
    describe_counter!(
        DEFERRED,
        "Previews that waited for the bot-wide budget, and typing skipped while calls waited."
    );
    describe_histogram!(RETRY_AFTER, "Seconds platforms asked to wait after a 429.");
    describe_gauge!(ACTIVE_STREAMS, "Replies streaming right now.");
    describe_gauge!(QUEUE_DEPTH, "Inbound messages waiting in the shared queue.");
    describe_gauge!(
        INSTANCE_LEASES,
        "Leases this instance holds: chats it talks to, and the Telegram poll lease."
    );
    describe_gauge!(
        INBOX_DEPTH,
        "Inbound events in the shared inbox not started yet, over all instances."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the label says which version runs.");
}

/// The outcomes a finished reply is counted under.
const OUTCOMES: [ReplyStatus; 3] = [
    ReplyStatus::Complete,
    ReplyStatus::Partial,
    ReplyStatus::Failed,
];

/// Creates every series known in advance, at zero, so dashboards and `rate()` work from the
/// first scrape: each family for each of `platforms`, each outcome, call kind and completion
/// error kind, the gauges, and [`BUILD_INFO`] at 1.
pub fn register_known(platforms: &[PlatformKind]) {
    for platform in platforms.iter().map(|p| p.as_str()) {
        counter!(INCOMING, "platform" => platform).increment(0);
        for outcome in OUTCOMES.map(ReplyStatus::as_str) {
            counter!(REPLIES, "platform" => platform, "outcome" => outcome).increment(0);
        }
        for name in [FIRST_TOKEN, REPLY_TIME, RETRY_AFTER] {
            let _ = histogram!(name, "platform" => platform);
        }
        for kind in CallKind::ALL.map(CallKind::as_str) {
            for name in [PLATFORM_CALLS, RATE_LIMITED, DEFERRED] {
                counter!(name, "platform" => platform, "kind" => kind).increment(0);
            }
        }
    }
    for name in [TOKENS_IN, TOKENS_OUT, TOKENS_CACHED, API_RETRIES] {
        counter!(name).increment(0);
    }
    for kind in ModelError::KINDS {
        counter!(API_ERRORS, "kind" => kind).increment(0);
    }
    for name in [ACTIVE_STREAMS, QUEUE_DEPTH, INSTANCE_LEASES, INBOX_DEPTH] {
        gauge!(name).increment(0.0);
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// An inbound message was queued.
pub fn incoming(platform: PlatformKind) {
    counter!(INCOMING, "platform" => platform.as_str()).increment(1);
}

/// The reply's first text became visible `after` the model was asked.
pub fn first_token(platform: PlatformKind, after: Duration) {
    histogram!(FIRST_TOKEN, "platform" => platform.as_str()).record(after.as_secs_f64());
}

/// A reply ended with `status` after `took`, having used `usage`.
pub fn reply_finished(platform: PlatformKind, status: ReplyStatus, took: Duration, usage: &Usage) {
    let outcome = status.as_str();
    counter!(REPLIES, "platform" => platform.as_str(), "outcome" => outcome).increment(1);
    histogram!(REPLY_TIME, "platform" => platform.as_str()).record(took.as_secs_f64());
    counter!(TOKENS_IN).increment(usage.prompt_tokens);
    counter!(TOKENS_OUT).increment(usage.completion_tokens);
    counter!(TOKENS_CACHED).increment(usage.cached_tokens);
}

/// A completion failed with an error of this `kind`.
pub fn completion_error(kind: &'static str) {
    counter!(API_ERRORS, "kind" => kind).increment(1);
}

/// A completion request is sent again.
pub fn completion_retry() {
    counter!(API_RETRIES).increment(1);
}

/// A call was made to a platform.
pub fn platform_call(platform: PlatformKind, kind: CallKind) {
    counter!(PLATFORM_CALLS, "platform" => platform.as_str(), "kind" => kind.as_str()).increment(1);
}

/// A call of `kind` waited behind others for the bot-wide budget, or typing was skipped.
pub fn deferred(platform: PlatformKind, kind: CallKind) {
    counter!(DEFERRED, "platform" => platform.as_str(), "kind" => kind.as_str()).increment(1);
}

/// A platform answered 429, asking to wait `retry_after`.
pub fn rate_limited(platform: PlatformKind, kind: CallKind, retry_after: Duration) {
    let name = platform.as_str();
    counter!(RATE_LIMITED, "platform" => name, "kind" => kind.as_str()).increment(1);
    histogram!(RETRY_AFTER, "platform" => name).record(retry_after.as_secs_f64());
}

/// The shared queue holds `depth` messages.
pub fn queue_depth(depth: usize) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
}

/// This instance holds `count` leases.
pub fn instance_leases(count: usize) {
    gauge!(INSTANCE_LEASES).set(count as f64);
}

/// The shared inbox holds `depth` events not started yet.
pub fn inbox_depth(depth: u64) {
    gauge!(INBOX_DEPTH).set(depth as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_render_in_the_prometheus_text_format() {
        let recorder = recorder().expect("valid buckets");
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            incoming(PlatformKind::Telegram);
            let usage = Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_tokens: 80,
                reasoning_tokens: 0,
            };
            reply_finished(
                PlatformKind::Telegram,
                ReplyStatus::Partial,
                Duration::from_secs(3),
                &usage,
            );
            rate_limited(
                PlatformKind::Discord,
                CallKind::Edit,
                Duration::from_secs(2),
            );
            Prometheus.stream_started();
            Prometheus.stream_ended();
        });
        let text = handle.render();
        assert!(
            text.contains(r#"parley_incoming_messages_total{platform="telegram"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"parley_replies_total{platform="telegram",outcome="partial"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("parley_cached_prompt_tokens_total 80"),
            "{text}"
        );
        assert!(
            text.contains(r#"parley_reply_duration_seconds_bucket{platform="telegram",le="4"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"parley_platform_retry_after_seconds_sum{platform="discord"} 2"#),
            "{text}"
        );
        assert!(text.contains("parley_active_streams 0"), "{text}");
    }

    #[test]
    fn known_series_are_exported_at_zero_before_anything_happened() {
        let recorder = recorder().expect("valid buckets");
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            register_known(&[PlatformKind::Telegram, PlatformKind::Discord]);
        });
        let text = handle.render();
        for line in [
            r#"parley_incoming_messages_total{platform="discord"} 0"#,
            r#"parley_replies_total{platform="telegram",outcome="failed"} 0"#,
            r#"parley_platform_rate_limited_total{platform="telegram",kind="edit"} 0"#,
            r#"parley_platform_deferred_total{platform="discord",kind="typing"} 0"#,
            r#"parley_completion_errors_total{kind="timeout_idle"} 0"#,
            r#"parley_reply_first_token_seconds_count{platform="telegram"} 0"#,
            r#"parley_platform_retry_after_seconds_sum{platform="discord"} 0"#,
            "parley_completion_retries_total 0",
            "parley_queue_depth 0",
            "parley_active_streams 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        let build = format!(
            r#"parley_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
    }

    #[test]
    fn every_completion_error_kind_is_known_in_advance() {
        use crate::engine::ports::TimeoutKind;
        let errors = [
            ModelError::RateLimited { retry_after: None },
            ModelError::Unauthorized,
            ModelError::UnknownModel("x".into()),
            ModelError::BadRequest("x".into()),
            ModelError::Unavailable("x".into()),
            ModelError::Timeout(TimeoutKind::Connect),
            ModelError::Timeout(TimeoutKind::FirstToken),
            ModelError::Timeout(TimeoutKind::Idle),
            ModelError::Timeout(TimeoutKind::Total),
            ModelError::Incomplete,
            ModelError::Upstream("x".into()),
        ];
        let kinds: Vec<_> = errors.iter().map(ModelError::kind).collect();
        assert_eq!(kinds, ModelError::KINDS);
    }
}
