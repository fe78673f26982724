//! Long polling with backoff, and what each update turns into: a queued turn, a command, the
//! help text, the /model keyboard or a refusal.

use std::sync::Arc;
use std::time::Duration;

use teloxide::Bot;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::requests::Request;
use teloxide::types::{Update, UpdateKind};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::access::{Access, REFUSAL};
use super::inbound::{Action, Addressed, Me, map_message};
use super::long_poll::{LongPoll, PollError};
use super::{Services, TelegramConfig, TelegramPlatform, commands};
use crate::engine::controls::Press;
use crate::engine::event::{Content, Incoming};
use crate::engine::ports::{ModelName, Platform};
use crate::health::HealthHandle;

/// What became of an update offered to the intake ([`Accept::accept_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// New: handled (or queued to be).
    New(i64),
    /// Already taken once; dropped.
    Duplicate(i64),
    /// Without an `update_id`: not an update at all; dropped.
    NotAnUpdate,
}

/// Where the polling loop hands each update: the bot's intake (`intake::Intake`), which hands
/// it back to [`Adapter`] to be handled.
#[async_trait::async_trait]
pub trait Accept: Send + Sync {
    /// Takes a poll's raw updates in, in their order; what became of each.
    async fn accept_all(&self, raws: &[&serde_json::value::RawValue]) -> Vec<Taken>;
}

/// The longest wait after failures that cost little to retry: a 5xx, an error page from a
/// proxy, a network error. Keeps recovery quick once the Bot API is back.
const SHORT_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait after the Bot API refused the poll (a revoked token, another instance
/// polling the same bot).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long stopping waits to confirm the handled updates.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// The running adapter: polls and routes updates.
pub(super) struct Adapter {
    pub(super) bot: Bot,
    pub(super) me: Me,
    pub(super) platform: Arc<TelegramPlatform>,
    pub(super) services: Services,
    pub(super) access: Arc<Access>,
    pub(super) models: Vec<ModelName>,
    pub(super) default_model: ModelName,
    long_poll: LongPoll,
    poll_timeout: Duration,
    poll_backoff: Duration,
}

/// Where polling stands: the next offset, the next backoff, and the outage under way.
struct Progress {
    offset: i64,
    backoff: Duration,
    outage: Option<Outage>,
}

/// A run of failed polls, for one WARN line at its start and one INFO line at its end.
struct Outage {
    since: Instant,
    failures: u32,
}

impl Progress {
    /// The next poll's timeout: at once after a failure, else the long poll's.
    fn timeout(&self, long: Duration) -> Duration {
        if self.outage.is_some() {
            Duration::ZERO
        } else {
            long
        }
    }

    /// A poll answered: the backoff starts over and an outage ends.
    fn answered(&mut self, health: &HealthHandle, first_backoff: Duration) {
        health.beat();
        self.backoff = first_backoff;
        if let Some(ended) = self.outage.take() {
            let secs = ended.since.elapsed().as_secs();
            let failures = ended.failures;
            tracing::info!(failures, secs, "telegram polling recovered");
        }
    }

    /// A poll failed: warns once per outage and returns how long to wait.
    fn failed(&mut self, error: &PollError, health: &HealthHandle) -> Duration {
        let (wait, next) = after_failure(error, self.backoff);
        self.backoff = next;
        health.fail(format!("getUpdates: {error}"));
        match &mut self.outage {
            Some(outage) => {
                outage.failures += 1;
                tracing::debug!(%error, retry_in = ?wait, "telegram polling still failing");
            }
            None => {
                tracing::warn!(%error, retry_in = ?wait, "telegram polling failed");
                let since = Instant::now();
                self.outage = Some(Outage { since, failures: 1 });
            }
        }
        wait
    }
}

impl Adapter {
    pub(super) fn new(
        config: &TelegramConfig,
        me: Me,
        platform: Arc<TelegramPlatform>,
        services: Services,
        long_poll: LongPoll,
    ) -> Self {
        let access = Access::new(
            &config.allowed_chats,
            &config.allowed_users,
            &config.admins,
            config.refusal_every,
        );
        Self {
            bot: platform.bot().clone(),
            me,
            platform,
            services,
            access: Arc::new(access),
            models: config.models.clone(),
            default_model: config.default_model.clone(),
            long_poll,
            poll_timeout: config.poll_timeout,
            poll_backoff: config.poll_backoff,
        }
    }

    /// Polls until `stop`, handing every update to `intake`; failures back off and never end
    /// the loop. A quiet poll (no updates when its timeout ends) is a success like any other.
    /// After a failure the next poll asks with timeout 0, so the first answer after an outage
    /// comes at once and heals the health.
    pub(super) async fn run(self: Arc<Self>, intake: Arc<dyn Accept>, stop: CancellationToken) {
        let adapter = self;
        let health = &adapter.services.health;
        let mut progress = Progress {
            offset: 0,
            backoff: adapter.poll_backoff,
            outage: None,
        };
        loop {
            if !adapter.may_poll(&stop).await {
                break;
            }
            let (offset, timeout) = (progress.offset, progress.timeout(adapter.poll_timeout));
            let result = tokio::select! {
                () = stop.cancelled() => break,
                result = adapter.long_poll.poll(offset, timeout) => result,
            };
            match result {
                Ok(updates) => {
                    progress.answered(health, adapter.poll_backoff);
                    let raws: Vec<&serde_json::value::RawValue> =
                        updates.iter().map(AsRef::as_ref).collect();
                    for taken in intake.accept_all(&raws).await {
                        progress.offset = match taken {
                            Taken::New(id) | Taken::Duplicate(id) => progress.offset.max(id + 1),
                            Taken::NotAnUpdate => progress.offset,
                        };
                    }
                }
                Err(error) => {
                    let wait = progress.failed(&error, health);
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        adapter.confirm(progress.offset).await;
        adapter.stop_polling().await;
        tracing::info!("telegram polling stopped");
    }

    /// Tells the server which updates were handled, so a restart does not see them again.
    async fn confirm(&self, offset: i64) {
        let Ok(offset) = i32::try_from(offset) else {
            return;
        };
        if offset == 0 {
            return;
        }
        let request = self.bot.get_updates().offset(offset).timeout(0).limit(1);
        if let Ok(Err(error)) = tokio::time::timeout(CONFIRM_WAIT, request.send()).await {
            tracing::warn!(%error, "could not confirm the last updates");
        }
    }

    /// Routes one decoded update: a message, a button press, a stopped draft.
    pub(super) async fn handle(self: &Arc<Self>, update: Update) {
        match update.kind {
            UpdateKind::Message(message) => {
                if let Some(addressed) = map_message(&message, &self.me) {
                    self.on_message(addressed).await;
                }
            }
            UpdateKind::CallbackQuery(query) => {
                // ◀/▶ presses are numbered in the order they came, before their handlers run
                // side by side: the newest shows.
                let press = query.data.as_deref().and_then(Press::parse);
                let controls = self.services.engine.controls();
                let number = press.map_or(0, |p| controls.arrived(p));
                let adapter = self.clone();
                self.services
                    .tracker
                    .spawn(async move { adapter.on_callback(query, number).await });
            }
            // Updates newer than teloxide knows arrive raw.
            UpdateKind::Error(raw) => self.generation_stopped(&raw),
            _ => {}
        }
    }

    async fn on_message(self: &Arc<Self>, addressed: Addressed) {
        let (chat, user) = (addressed.key.chat.as_str(), addressed.author.id.as_str());
        if !self.access.allows(chat, user) {
            tracing::info!(chat, "message from a chat or user not allowed");
            if self.access.refuse_now(chat) {
                self.notice(&addressed, REFUSAL.to_string());
            }
            return;
        }
        match addressed.action.clone() {
            Action::Prompt(text) => self.submit(&addressed, Content::Prompt(text), false),
            // Whether a chat admin may change settings is asked when the command's turn comes,
            // not here: a slow getChatMember would hold every later update.
            Action::Command(command) => {
                let listed = self.access.is_listed_admin(addressed.author.id.as_str());
                self.submit(&addressed, Content::Command(command), listed);
            }
            Action::Help => self.notice(&addressed, commands::help_text(addressed.private)),
            Action::ModelMenu => {
                let adapter = self.clone();
                self.services
                    .tracker
                    .spawn(async move { adapter.model_menu(&addressed).await });
            }
            Action::EmptyAsk => self.notice(&addressed, "Ask me something: /ask <question>".into()),
            Action::Unknown(name) => self.notice(
                &addressed,
                format!("I don't know /{name} — /help lists my commands."),
            ),
        }
    }

    /// True in private chats, for listed admins and for the group's administrators (asked of
    /// Telegram: call it off the polling loop).
    pub(super) async fn may_configure(&self, addressed: &Addressed) -> bool {
        let (key, user) = (&addressed.key, &addressed.author.id);
        addressed.private
            || self.access.is_listed_admin(user.as_str())
            || self.platform.is_chat_admin(key, user).await
    }

    pub(super) fn incoming(&self, addressed: &Addressed, content: Content, may: bool) -> Incoming {
        Incoming {
            key: addressed.key.clone(),
            author: addressed.author.clone(),
            content,
            attachments: addressed.attachments.clone(),
            private: addressed.private,
            may_configure: addressed.private || may,
            reply_to: addressed.reply_to.clone(),
            received_at: std::time::Instant::now(),
        }
    }

    fn submit(&self, addressed: &Addressed, content: Content, may: bool) {
        let platform: Arc<dyn Platform> = self.platform.clone();
        self.submit_to(addressed, content, may, platform);
    }

    /// Queues `content` in its chat's turn order, answered through `platform`; false when the
    /// queue refused it.
    pub(super) fn submit_to(
        &self,
        addressed: &Addressed,
        content: Content,
        may: bool,
        platform: Arc<dyn Platform>,
    ) -> bool {
        let incoming = self.incoming(addressed, content, may);
        let queued = self.services.dispatcher.submit(incoming, platform);
        if let Err(error) = &queued {
            tracing::warn!(%error, chat = %addressed.key, "message not queued");
        }
        queued.is_ok()
    }

    /// Sends a short answer outside the conversation's queue.
    pub(super) fn notice(&self, addressed: &Addressed, text: String) {
        let engine = self.services.engine.clone();
        let platform = self.platform.clone();
        let (key, reply_to) = (addressed.key.clone(), addressed.reply_to.clone());
        self.services.tracker.spawn(async move {
            engine
                .notify(platform.as_ref(), &key, reply_to.as_ref(), &text)
                .await;
        });
    }

    /// The model this chat uses now.
    pub(super) async fn current_model(&self, addressed: &Addressed) -> ModelName {
        let settings = self.services.engine.store().settings(&addressed.key).await;
        settings
            .ok()
            .and_then(|s| s.model)
            .filter(|m| self.models.contains(m))
            .unwrap_or_else(|| self.default_model.clone())
    }
}

/// How long to wait after a failed poll, and the backoff after that one: a retry-after exactly as
/// asked; cheap failures (a 5xx, a network error) doubling up to [`SHORT_BACKOFF`]; refusals
/// doubling up to [`MAX_BACKOFF`].
fn after_failure(error: &PollError, backoff: Duration) -> (Duration, Duration) {
    let cap = match error {
        PollError::RetryAfter(wait) => return (*wait, backoff),
        PollError::Server(_) | PollError::Network(_) | PollError::Unreadable(_) => SHORT_BACKOFF,
        PollError::Refused(_) => MAX_BACKOFF,
    };
    let wait = backoff.min(cap);
    (wait, (wait * 2).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(500);

    fn waits(error: &PollError, count: usize) -> Vec<Duration> {
        let mut backoff = FIRST;
        (0..count)
            .map(|_| {
                let (wait, next) = after_failure(error, backoff);
                backoff = next;
                wait
            })
            .collect()
    }

    #[test]
    fn cheap_failures_back_off_to_five_seconds_and_refusals_to_thirty() {
        let secs = |w: Vec<Duration>| w.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        let server = secs(waits(&PollError::Server(502), 6));
        assert_eq!(server, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]);
        let network = secs(waits(&PollError::Network("reset".into()), 6));
        assert_eq!(network, server);
        let refused = secs(waits(&PollError::Refused("409 Conflict".into()), 8));
        assert_eq!(refused, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    }

    #[test]
    fn a_retry_after_is_honoured_exactly_and_leaves_the_backoff_alone() {
        let asked = Duration::from_secs(3);
        let (wait, next) = after_failure(&PollError::RetryAfter(asked), Duration::from_secs(4));
        assert_eq!((wait, next), (asked, Duration::from_secs(4)));
        let short = Duration::from_millis(200);
        assert_eq!(after_failure(&PollError::RetryAfter(short), FIRST).0, short);
    }
}
