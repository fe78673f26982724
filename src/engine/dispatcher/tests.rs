//! Engine tests: turns, commands and dispatching over the in-memory ports, on a paused clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DispatchConfig, Dispatcher, Shutdown};
use crate::engine::attachment::read::AttachmentLimits;
use crate::engine::command::{Command, SystemAction};
use crate::engine::event::{Author, ChatKey, Content, Incoming, PlatformKind, UserId};
use crate::engine::memory::{MemoryPlatform, MemoryStore, Script, ScriptedModel};
use crate::engine::ports::{
    LengthUnit, Limits, ModelError, ModelName, Platform, ReplyStatus, Role, Started, Store,
};
use crate::engine::turn::{Engine, EngineConfig};

struct Harness {
    store: Arc<MemoryStore>,
    model: Arc<ScriptedModel>,
    platform: Arc<MemoryPlatform>,
    engine: Arc<Engine>,
}

fn limits() -> Limits {
    Limits {
        max_len: 4096,
        unit: LengthUnit::Utf16,
        min_interval: Duration::from_secs(1),
        window: None,
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(4),
    }
}

fn harness() -> Harness {
    harness_with(4)
}

/// A harness whose engine runs at most `max_concurrent` completions at once.
fn harness_with(max_concurrent: usize) -> Harness {
    let store = Arc::new(MemoryStore::default());
    let model = Arc::new(ScriptedModel::default());
    let config = EngineConfig {
        models: ["grok-4", "grok-3"].map(ModelName::new).to_vec(),
        default_model: ModelName::new("grok-4"),
        system_prompt: Some("be kind".into()),
        history_budget: 10_000,
        image_tokens: 1_000,
        image_models: vec![ModelName::new("grok-4")],
        attachments: AttachmentLimits {
            max_image_bytes: 10 << 20,
            max_text_bytes: 256 << 10,
        },
        max_concurrent,
        thinking_after: None,
    };
    let engine = Arc::new(Engine::new(store.clone(), model.clone(), config));
    Harness {
        store,
        model,
        platform: Arc::new(MemoryPlatform::new(limits())),
        engine,
    }
}

fn group() -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, "-100")
}

fn message(key: &ChatKey, user: &str, content: Content, may_configure: bool) -> Incoming {
    Incoming {
        key: key.clone(),
        author: Author {
            id: UserId::new(user),
            display_name: user.to_uppercase(),
        },
        content,
        attachments: Vec::new(),
        private: false,
        may_configure,
        reply_to: None,
        received_at: Instant::now(),
    }
}

fn prompt(key: &ChatKey, text: &str) -> Incoming {
    message(key, "ann", Content::Prompt(text.into()), false)
}

impl Harness {
    async fn send(&self, incoming: Incoming) {
        let cancel = CancellationToken::new();
        self.engine
            .handle(
                &incoming,
                self.platform.as_ref(),
                &cancel,
                &Started::new(None),
            )
            .await;
    }

    async fn command(&self, command: Command, may_configure: bool) -> String {
        let incoming = message(
            &group(),
            "ann",
            Content::Command(command.clone()),
            may_configure,
        );
        let platform = self.platform.as_ref();
        self.engine.run_command(&incoming, &command, platform).await
    }

    fn last_text(&self) -> String {
        self.platform.texts(&group()).pop().unwrap_or_default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_prompt_is_answered_streamed_and_recorded() {
    let h = harness();
    h.send(prompt(&group(), "hello")).await;
    assert_eq!(h.last_text(), "echo: ANN: hello");
    assert_eq!(
        h.store.replies(),
        [(ReplyStatus::Complete, "echo: ANN: hello".to_string(), None)]
    );
    let conversation = h.store.conversation(&group()).await.unwrap();
    let history = h.store.history(conversation.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].content, "hello", "the raw text is stored");
}

#[tokio::test(start_paused = true)]
async fn a_reply_waiting_for_its_final_slot_does_not_hold_the_completion_permit() {
    let h = Arc::new(harness_with(1));
    let (slow, other) = (group(), ChatKey::new(PlatformKind::Telegram, "-200"));
    // The first chat's platform asked for 30 s of quiet: its final text waits that long.
    let pacer = h.engine.pacer(PlatformKind::Telegram);
    pacer.pause(&slow, &limits(), Duration::from_secs(30));
    let first = tokio::spawn({
        let (h, slow) = (h.clone(), slow.clone());
        async move { h.send(prompt(&slow, "one")).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.model.requests().len(), 1, "the first request left");
    let start = tokio::time::Instant::now();
    h.send(prompt(&other, "two")).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the second completion waited {:?} for the permit",
        start.elapsed()
    );
    assert_eq!(h.platform.texts(&other), ["echo: ANN: two"]);
    assert!(
        !first.is_finished(),
        "the first reply still waits for its slot"
    );
    first.await.unwrap();
    assert_eq!(h.platform.texts(&slow), ["echo: ANN: one"]);
}

#[tokio::test(start_paused = true)]
async fn the_next_turn_extends_the_previous_request_with_the_same_conversation_id() {
    let h = harness();
    h.send(prompt(&group(), "one")).await;
    h.send(prompt(&group(), "two")).await;
    let requests = h.model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].conversation, requests[1].conversation);
    assert_eq!(requests[1].messages[..2], requests[0].messages[..]);
    let roles: Vec<Role> = requests[1].messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::Assistant, Role::User]
    );
    assert_eq!(requests[1].messages[0].content, "be kind");
}

#[tokio::test(start_paused = true)]
async fn reset_starts_a_conversation_with_a_new_id() {
    let h = harness();
    h.send(prompt(&group(), "one")).await;
    h.command(Command::Reset, false).await;
    h.send(prompt(&group(), "two")).await;
    let requests = h.model.requests();
    assert_ne!(requests[0].conversation, requests[1].conversation);
    assert_eq!(
        requests[1].messages.len(),
        2,
        "system prompt and the new message only"
    );
}

#[tokio::test(start_paused = true)]
async fn switching_the_model_changes_the_next_request() {
    let h = harness();
    let answer = h.command(Command::Model(Some("grok-3".into())), true).await;
    assert!(answer.contains("grok-3"), "{answer}");
    h.send(prompt(&group(), "hi")).await;
    assert_eq!(h.model.requests()[0].model, ModelName::new("grok-3"));
    let shown = h.command(Command::Model(None), false).await;
    assert!(shown.starts_with("Model: grok-3"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_model_is_refused_with_the_valid_ones() {
    let h = harness();
    let answer = h.command(Command::Model(Some("gpt-9".into())), true).await;
    assert!(answer.contains("grok-4, grok-3"), "{answer}");
    assert_eq!(h.store.settings(&group()).await.unwrap().model, None);
}

#[tokio::test(start_paused = true)]
async fn members_who_may_not_configure_cannot_change_settings() {
    let h = harness();
    let answer = h
        .command(Command::System(SystemAction::Set("be rude".into())), false)
        .await;
    assert!(answer.contains("Only admins"), "{answer}");
    assert_eq!(
        h.store.settings(&group()).await.unwrap().system_prompt,
        None
    );
    h.command(Command::System(SystemAction::Set("be brief".into())), true)
        .await;
    let shown = h.command(Command::System(SystemAction::Show), false).await;
    assert!(shown.contains("be brief"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn usage_reports_tokens_with_the_cached_share() {
    let h = harness();
    assert!(
        h.command(Command::Usage, false)
            .await
            .contains("No replies")
    );
    h.send(prompt(&group(), "hi")).await;
    let usage = h.command(Command::Usage, false).await;
    assert!(
        usage.contains("10 prompt tokens (5 cached, 50%)"),
        "{usage}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_gives_a_short_message_and_is_recorded_failed() {
    let h = harness();
    h.model.push(Script::Refuse(ModelError::Unauthorized));
    h.send(prompt(&group(), "hi")).await;
    assert!(
        h.last_text().contains("invalid API key"),
        "{}",
        h.last_text()
    );
    assert_eq!(h.store.replies()[0].0, ReplyStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_model_from_the_api_lists_the_valid_ones() {
    let h = harness();
    h.model
        .push(Script::Refuse(ModelError::UnknownModel("grok-4".into())));
    h.send(prompt(&group(), "hi")).await;
    assert!(
        h.last_text().contains("valid ones: grok-4, grok-3"),
        "{}",
        h.last_text()
    );
}

fn dispatcher(h: &Harness, per_conversation: usize) -> (Dispatcher, TaskTracker, Shutdown) {
    let tracker = TaskTracker::new();
    let shutdown = Shutdown::default();
    let config = DispatchConfig {
        queue_capacity: 64,
        per_conversation,
    };
    let d = Dispatcher::start(h.engine.clone(), config, tracker.clone(), shutdown.clone());
    (d, tracker, shutdown)
}

fn slow(text: &str) -> Script {
    Script::Reply {
        text: text.into(),
        chunk: 5,
        gap: Duration::from_millis(200),
    }
}

#[tokio::test(start_paused = true)]
async fn turns_of_one_conversation_run_in_order() {
    let h = harness();
    let (d, _tracker, _shutdown) = dispatcher(&h, 8);
    let platform: Arc<dyn Platform> = h.platform.clone();
    for i in 0..3 {
        h.model.push(slow(&format!("answer {i}")));
        d.submit(prompt(&group(), &format!("q{i}")), platform.clone())
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let requests = h.model.requests();
    assert_eq!(requests.len(), 3);
    for (i, request) in requests.iter().enumerate() {
        let last = request.messages.last().unwrap();
        assert_eq!(last.content, format!("ANN: q{i}"));
        // Each turn sees every earlier turn's answer: they did not overlap.
        assert_eq!(request.messages.len(), 2 + 2 * i);
    }
}

#[tokio::test(start_paused = true)]
async fn different_conversations_stream_at_the_same_time() {
    let h = harness();
    let (d, _tracker, _shutdown) = dispatcher(&h, 8);
    let platform: Arc<dyn Platform> = h.platform.clone();
    let chats: Vec<ChatKey> = (0..3)
        .map(|i| ChatKey::new(PlatformKind::Telegram, format!("-{i}")))
        .collect();
    for chat in &chats {
        h.model.push(slow("0123456789 0123456789"));
        d.submit(prompt(chat, "go"), platform.clone()).unwrap();
    }
    // One reply alone takes about 1 s (5 chunks 200 ms apart); three in sequence would take 3 s.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(h.store.replies().len(), 3);
    assert!(
        h.store
            .replies()
            .iter()
            .all(|r| r.0 == ReplyStatus::Complete)
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_conversation_queue_answers_busy() {
    let h = harness();
    let (d, _tracker, _shutdown) = dispatcher(&h, 1);
    let platform: Arc<dyn Platform> = h.platform.clone();
    for i in 0..4 {
        h.model.push(slow("a long answer that takes a while"));
        d.submit(prompt(&group(), &format!("q{i}")), platform.clone())
            .unwrap();
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let texts = h.platform.texts(&group());
    assert!(
        texts.iter().any(|t| t == super::BUSY),
        "a busy notice was sent: {texts:?}"
    );
    assert!(h.model.requests().len() < 4, "not every message was taken");
}

#[tokio::test(start_paused = true)]
async fn a_flood_into_a_full_queue_gets_one_busy_notice_per_chat_and_period() {
    let h = harness();
    let (d, _tracker, _shutdown) = dispatcher(&h, 1);
    let platform: Arc<dyn Platform> = h.platform.clone();
    let flood = |count: usize| {
        for i in 0..count {
            h.model.push(slow("a long answer that takes a while"));
            let _ = d.submit(prompt(&group(), &format!("q{i}")), platform.clone());
        }
    };
    flood(2);
    tokio::task::yield_now().await;
    // The worker has its one job running and one waiting: twenty more are turned away.
    flood(20);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let busy = |h: &Harness| {
        let texts = h.platform.texts(&group());
        texts.iter().filter(|t| *t == super::BUSY).count()
    };
    assert_eq!(busy(&h), 1, "one notice for the flood");
    tokio::time::sleep(super::BUSY_EVERY).await;
    flood(5);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(busy(&h), 2, "one more once the period has passed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_taking_messages() {
    let h = harness();
    let (d, tracker, shutdown) = dispatcher(&h, 8);
    shutdown.intake.cancel();
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let platform: Arc<dyn Platform> = h.platform.clone();
    let result = d.submit(prompt(&group(), "late"), platform);
    assert_eq!(result, Err(super::SubmitError::Closed));
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn an_older_replys_buttons_wait_behind_another_chats_final_text_for_the_bot_wide_slot() {
    use crate::engine::memory::CallKind;
    use crate::engine::ports::Window;
    let mut h = harness();
    // One call a second for the whole bot: the two chats compete for each slot.
    let budgeted = Limits {
        bot: Some(Window {
            count: 1,
            per: Duration::from_secs(1),
        }),
        ..limits()
    };
    h.platform = Arc::new(MemoryPlatform::new(budgeted));
    let h = Arc::new(h);
    let (a, b) = (group(), ChatKey::new(PlatformKind::Telegram, "-200"));
    h.send(prompt(&a, "one")).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    // At T: chat a's second turn starts; its text shows at T and its final text at T+1.1, then
    // its first reply's buttons go: they wait for the slot at T+2.2. Chat b's reply (started
    // at T-4.1) showed its first text at T-1.3 and ends at T+1.5: its final text waits for the
    // same slot, and must have it.
    h.model.push(Script::Reply {
        text: "Hello world".into(),
        chunk: 6,
        gap: Duration::from_millis(2_800),
    });
    let other = tokio::spawn({
        let (h, b) = (h.clone(), b.clone());
        async move { h.send(prompt(&b, "go")).await }
    });
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    h.model.push(Script::Reply {
        text: "Two.".into(),
        chunk: 10,
        gap: Duration::ZERO,
    });
    h.send(prompt(&a, "two")).await;
    other.await.unwrap();

    let calls = h.platform.calls();
    let buttons = calls
        .iter()
        .position(|c| c.kind == CallKind::Buttons)
        .expect("the first reply's buttons were removed");
    assert_eq!(calls[buttons].chat, a);
    assert!(calls[buttons].outcome.is_ok(), "{calls:?}");
    let final_text = calls
        .iter()
        .rposition(|c| c.chat == b && c.text == "Hello world")
        .expect("b's final text landed");
    assert!(
        final_text < buttons,
        "a cosmetic call went before another chat's final text: {calls:#?}"
    );
    assert_eq!(h.platform.texts(&b), ["Hello world"]);
    assert_eq!(h.platform.rate_limited(), 0);
}

#[tokio::test(start_paused = true)]
async fn showing_another_answer_is_not_counted_as_a_reply() {
    crate::metrics::meter_engine();
    let recorder = crate::metrics::recorder().expect("valid buckets");
    let handle = recorder.handle();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let h = harness();
    let command = |command| message(&group(), "ann", Content::Command(command), false);
    h.send(prompt(&group(), "one")).await;
    h.model.push(Script::Reply {
        text: "Another answer.".into(),
        chunk: 100,
        gap: Duration::ZERO,
    });
    h.send(command(Command::Regenerate(None))).await;
    assert_eq!(h.last_text(), "Another answer.");
    let first = Command::Show {
        reply: None,
        index: 0,
        press: 0,
    };
    h.send(command(first)).await;
    assert_eq!(
        h.last_text(),
        "echo: ANN: one",
        "the first answer shows again"
    );
    assert_eq!(h.model.requests().len(), 2);
    let text = handle.render();
    let complete = r#"parley_replies_total{platform="telegram",outcome="complete"} "#;
    let count = text.lines().find_map(|l| l.strip_prefix(complete));
    assert_eq!(count, Some("2"), "the answer and the regenerate: {text}");
    let first_token = r#"parley_reply_first_token_seconds_count{platform="telegram"} "#;
    let count = text.lines().find_map(|l| l.strip_prefix(first_token));
    assert_eq!(count, Some("2"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn an_older_replys_buttons_are_left_when_no_slot_comes_while_the_bot_is_saturated() {
    use crate::engine::memory::CallKind;
    use crate::engine::pace::Urgency;
    use crate::engine::ports::Window;
    let mut h = harness();
    let budgeted = Limits {
        bot: Some(Window {
            count: 1,
            per: Duration::from_secs(1),
        }),
        ..limits()
    };
    h.platform = Arc::new(MemoryPlatform::new(budgeted));
    let a = group();
    h.send(prompt(&a, "one")).await;
    // From now on another chat's final texts always wait for the bot-wide budget.
    let pacer = h.engine.pacer(PlatformKind::Telegram).clone();
    let flood = tokio::spawn(async move {
        let other = ChatKey::new(PlatformKind::Telegram, "-300");
        loop {
            pacer.acquire(&other, &budgeted, Urgency::Final).await;
        }
    });
    h.model.push(Script::Reply {
        text: "Two.".into(),
        chunk: 10,
        gap: Duration::ZERO,
    });
    let start = tokio::time::Instant::now();
    h.send(prompt(&a, "two")).await;
    let took = start.elapsed();
    flood.abort();
    assert_eq!(h.last_text(), "Two.");
    assert!(
        took < Duration::from_secs(15),
        "the turn waited {took:?} for a cosmetic call"
    );
    let calls = h.platform.calls();
    assert!(
        calls.iter().all(|c| c.kind != CallKind::Buttons),
        "{calls:?}"
    );
}

/// Notes what the store held when its message's turn said it started.
struct SeesReplies {
    store: Arc<MemoryStore>,
    seen: Arc<std::sync::Mutex<Vec<Vec<ReplyStatus>>>>,
}

#[async_trait::async_trait]
impl super::Receipt for SeesReplies {
    async fn started(&self) {
        let statuses = self.store.replies().into_iter().map(|r| r.0).collect();
        self.seen.lock().unwrap().push(statuses);
    }
}

/// A kept prompt's turn says it started only once its reply row is stored: an instance dying
/// before leaves the message waiting for another to answer, one dying after leaves a streaming
/// reply to mark; never a message started with nothing to show for it. A command starts at once.
#[tokio::test(start_paused = true)]
async fn a_kept_prompt_starts_once_its_reply_row_is_stored_and_a_command_at_once() {
    let h = harness();
    let (d, _tracker, _shutdown) = dispatcher(&h, 8);
    let platform: Arc<dyn Platform> = h.platform.clone();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let receipt = || {
        Box::new(SeesReplies {
            store: h.store.clone(),
            seen: seen.clone(),
        })
    };
    h.model.push(slow("0123456789 0123456789"));
    let submit = async { d.submit(prompt(&group(), "go"), platform.clone()) };
    let ((), left) = super::with_receipt(receipt(), async { submit.await.unwrap() }).await;
    assert!(left.is_none(), "the queued prompt took the receipt");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let help = message(&group(), "ann", Content::Command(Command::Help), false);
    let ((), left) = super::with_receipt(receipt(), async {
        d.submit(help, platform.clone()).unwrap()
    })
    .await;
    assert!(left.is_none());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [vec![ReplyStatus::Streaming], vec![ReplyStatus::Complete]],
        "told once each: the prompt with its reply row streaming, the command before it added any"
    );
}
