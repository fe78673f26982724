//! Webhook mode (`telegram.webhook_url`): Telegram posts each update to `/telegram/webhook` on
//! the HTTP listener. The bot registers the webhook on start (setWebhook), checks Telegram's
//! secret-token header on every request, passes the update to the [`Intake`] and answers 200 as
//! soon as it is taken (queued, not answered: a reply may stream for minutes, and Telegram
//! re-sends an update whose request fails or times out). Health watches getWebhookInfo.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use teloxide::Bot;
use teloxide::requests::{JsonRequest, Payload};
use teloxide::types::True;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StartError;
use super::intake::{Intake, Taken};
use super::long_poll::ALLOWED_UPDATES;
use crate::health::{FRESH, HealthHandle};
use crate::secret::Secret;

/// The path Telegram posts updates to.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";
/// The header Telegram sends the secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// How often getWebhookInfo is asked whether Telegram delivers.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Webhook mode's settings: where Telegram posts, and the secret it sends along.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `telegram.webhook_url`.
    pub url: String,
    /// `telegram.webhook_secret` (never logged).
    pub secret: Secret,
}

/// Where the `/telegram/webhook` route finds its receiver: filled when Telegram starts in webhook
/// mode, empty otherwise (the route then answers 404). Cheap to clone.
#[derive(Clone, Default)]
pub struct WebhookSlot(Arc<OnceLock<WebhookReceiver>>);

impl WebhookSlot {
    /// The receiver, once Telegram runs in webhook mode.
    pub fn get(&self) -> Option<&WebhookReceiver> {
        self.0.get()
    }

    fn fill(&self, receiver: WebhookReceiver) {
        if self.0.set(receiver).is_err() {
            tracing::warn!("the webhook receiver was already set; keeping the first");
        }
    }
}

/// Checks and takes the requests Telegram posts to the webhook.
pub struct WebhookReceiver {
    secret: Secret,
    intake: Arc<Intake>,
    tracker: TaskTracker,
    stop: CancellationToken,
    health: HealthHandle,
    last_update: Arc<Mutex<Option<Instant>>>,
}

impl WebhookReceiver {
    /// Answers one request with `secret` in its header and `body`: 401 without the right secret
    /// (the body is not parsed), 400 for a body that is not an update, 503 while the bot stops (Telegram
    /// re-sends it later, to this or another instance), else 200 once the update is taken or
    /// recognised as taken before.
    pub async fn receive(&self, secret: Option<&[u8]>, body: Bytes) -> StatusCode {
        if !secret.is_some_and(|given| same(given, self.secret.expose().as_bytes())) {
            tracing::warn!("refused a webhook request without the right secret token");
            return StatusCode::UNAUTHORIZED;
        }
        if self.stop.is_cancelled() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(&body) else {
            tracing::warn!(bytes = body.len(), "a webhook request's body is not JSON");
            return StatusCode::BAD_REQUEST;
        };
        // On a task of its own: Telegram giving up on the request must not cut the handling
        // between taking the update and queueing it.
        let intake = self.intake.clone();
        let taken = self.tracker.spawn(async move { intake.accept(&raw).await });
        match taken.await {
            Ok(Taken::New(_)) => {
                self.health.beat();
                *self.last_update.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                StatusCode::OK
            }
            Ok(Taken::Duplicate(_)) => StatusCode::OK,
            Ok(Taken::NotAnUpdate) => {
                tracing::warn!("a webhook request's body is not an update (no update_id)");
                StatusCode::BAD_REQUEST
            }
            Err(error) => {
                tracing::error!(%error, "handling a webhook update failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Compares a secret in time that does not depend on where the inputs differ.
fn same(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// `setWebhook` with the update kinds teloxide does not know (Bot API 9.5's stopped drafts).
#[derive(Serialize)]
struct SetWebhook {
    url: String,
    secret_token: String,
    allowed_updates: [&'static str; 3],
    drop_pending_updates: bool,
}

impl Payload for SetWebhook {
    type Output = True;
    const NAME: &'static str = "SetWebhook";
}

/// `getWebhookInfo`, read raw: teloxide cannot read an `allowed_updates` it does not know.
#[derive(Serialize)]
struct GetWebhookInfo {}

/// What health needs of a `WebhookInfo`.
#[derive(Debug, Deserialize)]
struct Info {
    #[serde(default)]
    url: String,
    last_error_date: Option<i64>,
    last_error_message: Option<String>,
}

impl Payload for GetWebhookInfo {
    type Output = Info;
    const NAME: &'static str = "GetWebhookInfo";
}

/// Fills the services' webhook slot with a receiver in front of `intake`, then registers the
/// webhook, so Telegram's first request finds it; then watches getWebhookInfo for health. A
/// refusal names `telegram.webhook_url`.
pub(super) async fn start(
    bot: &Bot,
    webhook: &Webhook,
    intake: Arc<Intake>,
    services: &super::Services,
) -> Result<(), StartError> {
    let last_update = Arc::new(Mutex::new(None));
    services.webhook.fill(WebhookReceiver {
        secret: webhook.secret.clone(),
        intake,
        tracker: services.tracker.clone(),
        stop: services.stop.clone(),
        health: services.health.clone(),
        last_update: last_update.clone(),
    });
    let set = SetWebhook {
        url: webhook.url.clone(),
        secret_token: webhook.secret.expose().to_string(),
        allowed_updates: ALLOWED_UPDATES,
        drop_pending_updates: false,
    };
    match JsonRequest::new(bot.clone(), set).await {
        Ok(_) => {}
        Err(teloxide::RequestError::Api(error)) => {
            return Err(StartError::WebhookRefused(error.to_string()));
        }
        Err(error) => return Err(StartError::WebhookUnanswered(error.to_string())),
    }
    let watch = watch(
        bot.clone(),
        webhook.url.clone(),
        services.health.clone(),
        last_update,
    );
    let stop = services.stop.clone();
    services.tracker.spawn(async move {
        tokio::select! {
            () = watch => {}
            () = stop.cancelled() => {}
        }
    });
    Ok(())
}

/// Telegram in webhook mode is healthy while getWebhookInfo shows the webhook still set to
/// `url` and reports no failed delivery in the last minute that no update taken since then
/// contradicts. (A quiet bot gets no updates; getWebhookInfo is what says Telegram can reach it.)
async fn watch(
    bot: Bot,
    url: String,
    health: HealthHandle,
    last_update: Arc<Mutex<Option<Instant>>>,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        let info = match JsonRequest::new(bot.clone(), GetWebhookInfo {}).await {
            Ok(info) => info,
            Err(error) => {
                health.fail(format!("getWebhookInfo: {error}"));
                continue;
            }
        };
        let last = *last_update.lock().unwrap_or_else(|p| p.into_inner());
        match judge(&info, &url, now_unix(), last.map(|at| at.elapsed())) {
            Ok(()) => health.beat(),
            Err(why) => health.fail(why),
        }
    }
}

/// Seconds since the epoch, as Telegram's dates.
fn now_unix() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_secs() as i64)
}

/// Whether `info` says Telegram delivers to `url`: the reason when it does not. `now` in Unix
/// seconds; `last_update`: how long ago an update was taken, if ever.
fn judge(info: &Info, url: &str, now: i64, last_update: Option<Duration>) -> Result<(), String> {
    if info.url != url {
        return Err(
            "the webhook is no longer set to telegram.webhook_url (another process changed it)"
                .into(),
        );
    }
    let Some(date) = info.last_error_date else {
        return Ok(());
    };
    let error_ago = now.saturating_sub(date).max(0) as u64;
    let recent = error_ago <= FRESH.as_secs();
    let update_since = last_update.is_some_and(|ago| ago.as_secs() < error_ago);
    if recent && !update_since {
        let message = info
            .last_error_message
            .as_deref()
            .unwrap_or("no reason given");
        return Err(format!("Telegram could not deliver updates: {message}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://bot.example/telegram/webhook";

    fn info(url: &str, error: Option<(i64, &str)>) -> Info {
        Info {
            url: url.into(),
            last_error_date: error.map(|e| e.0),
            last_error_message: error.map(|e| e.1.to_string()),
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"", b"s3cret"));
    }

    #[test]
    fn health_fails_when_the_webhook_points_elsewhere() {
        let why = judge(&info("", None), URL, 1000, None).expect_err("removed");
        assert!(why.contains("telegram.webhook_url"), "{why}");
        assert!(!why.contains("bot.example"), "the URL stays out: {why}");
        assert!(judge(&info(URL, None), URL, 1000, None).is_ok());
    }

    #[test]
    fn a_recent_delivery_error_fails_until_an_update_arrives_after_it() {
        let failed = info(
            URL,
            Some((990, "Wrong response from the webhook: 502 Bad Gateway")),
        );
        let why = judge(&failed, URL, 1000, None).expect_err("10 s ago");
        assert!(why.contains("502 Bad Gateway"), "{why}");
        let before = Some(Duration::from_secs(20));
        assert!(
            judge(&failed, URL, 1000, before).is_err(),
            "taken before it"
        );
        let after = Some(Duration::from_secs(3));
        assert!(judge(&failed, URL, 1000, after).is_ok(), "taken since");
        assert!(judge(&failed, URL, 1100, None).is_ok(), "over a minute ago");
    }
}
