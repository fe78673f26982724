//! Tests of the reply engine against the in-memory platform, on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, sleep};

use super::*;
use crate::engine::controls::{Controls, STOPPED, StopAnswer, Stopper, stop_button};
use crate::engine::event::{PlatformKind, UserId};
use crate::engine::memory::{Call, CallKind, MemoryPlatform};
use crate::engine::pace::Urgency;
use crate::engine::ports::{
    LengthUnit, Limits, MessageRowId, Phase, PlatformError, StreamEvent, Window,
};
use crate::engine::split;

type Step = (u64, Result<StreamEvent, ModelError>);

fn limits(max_len: usize) -> Limits {
    Limits {
        max_len,
        unit: LengthUnit::Utf16,
        min_interval: Duration::from_secs(1),
        window: None,
        shared: None,
        bot: None,
        typing_counts: false,
        typing_every: Duration::from_secs(5),
    }
}

fn chat() -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, "42")
}

fn content(ms: u64, text: &str) -> Step {
    (ms, Ok(StreamEvent::Content(text.to_string())))
}

fn finished(ms: u64) -> Step {
    (ms, Ok(StreamEvent::Finished("stop".into())))
}

/// A token stream whose events arrive `ms` after the one before, whether or not the reply is
/// reading then (a socket buffers them).
fn script(steps: Vec<Step>) -> TokenStream {
    let mut at = Instant::now();
    let timed: Vec<(Instant, Result<StreamEvent, ModelError>)> = steps
        .into_iter()
        .map(|(ms, item)| {
            at += Duration::from_millis(ms);
            (at, item)
        })
        .collect();
    TokenStream::new(
        futures_util::stream::iter(timed).then(|(at, item)| async move {
            tokio::time::sleep_until(at).await;
            item
        }),
    )
}

/// Words streamed one every `every_ms`, then finished.
fn words(count: usize, every_ms: u64) -> (String, Vec<Step>) {
    let tokens: Vec<String> = (0..count).map(|i| format!("word{i} ")).collect();
    let mut steps: Vec<Step> = tokens.iter().map(|t| content(every_ms, t)).collect();
    steps.push(finished(0));
    (tokens.concat(), steps)
}

/// The messages and the texts so far the reply reported.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<MessageRef>>>, Mutex<Vec<String>>);

#[async_trait]
impl ReplyObserver for Recorder {
    async fn messages_changed(&self, messages: &[MessageRef]) {
        self.0.lock().unwrap().push(messages.to_vec());
    }

    async fn text_so_far(&self, text: &str) {
        self.1.lock().unwrap().push(text.to_string());
    }
}

struct Harness {
    platform: Arc<MemoryPlatform>,
    pacer: Pacer,
    options: ReplyOptions,
    cancel: CancellationToken,
    observer: Recorder,
    reply_to: MessageRef,
    /// The Stop control, for the replies that show one.
    stop: Option<(Button, Arc<Stopper>)>,
}

impl Harness {
    fn new(max_len: usize) -> Self {
        Self::with(MemoryPlatform::new(limits(max_len)))
    }

    fn with(platform: MemoryPlatform) -> Self {
        Self {
            platform: Arc::new(platform),
            pacer: Pacer::new(),
            options: ReplyOptions::default(),
            cancel: CancellationToken::new(),
            observer: Recorder::default(),
            reply_to: MessageRef::new("user-7"),
            stop: None,
        }
    }

    async fn reply(&self, stream: Result<TokenStream, ModelError>) -> ReplyOutcome {
        let chat = chat();
        let ctx = ReplyContext {
            platform: self.platform.as_ref(),
            pacer: &self.pacer,
            chat: &chat,
            reply_to: Some(&self.reply_to),
            options: &self.options,
            observer: &self.observer,
            cancel: &self.cancel,
            stop: self.stop.as_ref().map(|(button, stopper)| StopControl {
                button,
                stopper: stopper.as_ref(),
            }),
            row: None,
            reuse: &[],
            browse: None,
            asked_at: Some(tokio::time::Instant::now()),
        };
        stream_reply(&ctx, stream).await
    }

    /// Replies with the scripted `steps` and returns when each event was read.
    async fn reply_noting_reads(&self, steps: Vec<Step>) -> (ReplyOutcome, Vec<Instant>) {
        let reads = Arc::new(Mutex::new(Vec::new()));
        let log = reads.clone();
        let stream = script(steps).inspect(move |_| log.lock().unwrap().push(Instant::now()));
        let outcome = self.reply(Ok(TokenStream::new(stream))).await;
        let reads = reads.lock().unwrap().clone();
        (outcome, reads)
    }

    fn texts(&self) -> Vec<String> {
        self.platform.texts(&chat())
    }

    /// Sends and edits the platform accepted.
    fn writes(&self) -> Vec<Call> {
        let calls = self.platform.calls().into_iter();
        calls
            .filter(|c| c.kind != CallKind::Typing && c.outcome.is_ok())
            .collect()
    }
}

fn pieces(text: &str, max_len: usize) -> Vec<String> {
    split::split(text, max_len, LengthUnit::Utf16)
        .into_iter()
        .map(|p| p.text)
        .collect()
}

fn assert_paced(writes: &[Call], gap: Duration) {
    for pair in writes.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= gap,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn first_token_is_visible_without_waiting() {
    let h = Harness::new(100);
    let start = Instant::now();
    let outcome = h
        .reply(Ok(script(vec![
            content(0, "Hello"),
            content(9000, "!"),
            finished(0),
        ])))
        .await;
    let calls = h.platform.calls();
    assert_eq!(calls[0].kind, CallKind::Typing);
    assert_eq!(
        (calls[1].kind, calls[1].text.as_str()),
        (CallKind::Send, "Hello")
    );
    assert_eq!(calls[1].at, start);
    assert_eq!(calls[1].phase, Some(Phase::Streaming));
    assert_eq!(outcome.status, ReplyStatus::Complete);
    assert_eq!(h.texts(), ["Hello!"]);
}

#[tokio::test(start_paused = true)]
async fn edits_are_paced_and_carry_the_newest_text() {
    let h = Harness::new(1000);
    let start = Instant::now();
    let (text, steps) = words(30, 100);
    let outcome = h.reply(Ok(script(steps))).await;
    let writes = h.writes();
    assert_paced(&writes, Duration::from_secs(1));
    let upto = |n: usize| (0..n).map(|i| format!("word{i} ")).collect::<String>();
    for call in writes.iter().filter(|c| c.phase == Some(Phase::Streaming)) {
        // Word i arrives at (i + 1) * 100 ms; one arriving at the very instant may miss it.
        let arrived = ((call.at - start).as_millis() / 100) as usize;
        let newest = [upto(arrived), upto(arrived.saturating_sub(1))];
        assert!(
            newest.contains(&call.text),
            "{:?}: {}",
            call.at - start,
            call.text
        );
    }
    assert!(writes.len() <= 5, "{} writes", writes.len());
    assert_eq!(writes.last().map(|c| c.phase), Some(Some(Phase::Final)));
    assert_eq!(h.texts(), std::slice::from_ref(&text));
    assert_eq!(outcome.text, text);
}

#[tokio::test(start_paused = true)]
async fn unchanged_text_is_not_edited_again() {
    let h = Harness::new(100);
    let mut steps = vec![content(0, "abc")];
    steps.extend((0..10).map(|_| (500, Ok(StreamEvent::Thinking(String::new())))));
    steps.extend([content(0, ""), finished(0)]);
    h.reply(Ok(script(steps))).await;
    let writes = h.writes();
    let phases: Vec<_> = writes.iter().map(|c| (c.text.as_str(), c.phase)).collect();
    assert_eq!(
        phases,
        [("abc", Some(Phase::Streaming)), ("abc", Some(Phase::Final))]
    );
}

#[tokio::test(start_paused = true)]
async fn long_reply_continues_in_a_second_message() {
    let h = Harness::new(60);
    let (text, steps) = words(25, 50);
    let outcome = h.reply(Ok(script(steps))).await;
    assert_eq!(h.texts(), pieces(&text, 60));
    assert!(h.texts().len() >= 3);
    assert_eq!(outcome.messages.len(), h.texts().len());
    let first = h.platform.message(&outcome.messages[0]).unwrap();
    assert_eq!(first.reply_to, Some(h.reply_to.clone()));
    for message in &outcome.messages {
        let stored = h.platform.message(message).unwrap();
        assert_eq!(stored.phase, Phase::Final);
        assert_eq!(stored.reply_to.is_some(), *message == outcome.messages[0]);
    }
    assert_eq!(h.platform.rate_limited(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_code_block_split_across_messages_reopens_and_reassembles() {
    let h = Harness::new(80);
    let code: String = (0..12).map(|i| format!("let v{i} = {i};\n")).collect();
    let text = format!("Look:\n```rust\n{code}```\nThat is all.");
    let steps = text
        .split_inclusive('\n')
        .map(|line| content(30, line))
        .chain([finished(0)]);
    let outcome = h.reply(Ok(script(steps.collect()))).await;
    let texts = h.texts();
    assert_eq!(texts, pieces(&text, 80));
    assert!(texts[1].starts_with("```rust\n"));
    let rebuilt = split::join(&split::split(&outcome.text, 80, LengthUnit::Utf16));
    assert_eq!(rebuilt, text);
}

#[tokio::test(start_paused = true)]
async fn final_text_lands_after_a_retry_after() {
    let h = Harness::new(100);
    let start = Instant::now();
    h.platform
        .fail_next_with_retry_after(2, Duration::from_secs(5));
    let outcome = h
        .reply(Ok(script(vec![
            content(0, "Hello"),
            content(500, " world"),
            finished(0),
        ])))
        .await;
    let writes = h.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].text, "Hello world");
    assert_eq!(writes[0].phase, Some(Phase::Final));
    assert!(writes[0].at - start >= Duration::from_secs(10));
    let attempts = h
        .platform
        .calls()
        .into_iter()
        .filter(|c| c.kind != CallKind::Typing);
    assert!(
        attempts
            .clone()
            .all(|c| c.at == start || c.at - start >= Duration::from_secs(5))
    );
    assert_eq!(attempts.count(), 3);
    assert_eq!(outcome.status, ReplyStatus::Complete);
}

#[tokio::test(start_paused = true)]
async fn deleted_message_continues_in_a_new_one() {
    let h = Harness::new(100);
    let platform = h.platform.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(1500)).await;
        platform.delete(&MessageRef::new("1"));
    });
    let steps = vec![
        content(0, "First part. "),
        content(3000, "Second part."),
        finished(0),
    ];
    let outcome = h.reply(Ok(script(steps))).await;
    assert_eq!(h.texts(), ["First part. Second part."]);
    assert_eq!(outcome.messages, [MessageRef::new("2")]);
    assert_eq!(outcome.status, ReplyStatus::Complete);
    let seen = h.observer.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            vec![MessageRef::new("1")],
            vec![],
            vec![MessageRef::new("2")]
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn midstream_failure_leaves_partial_text_with_marker() {
    let h = Harness::new(100);
    let steps = vec![
        content(0, "Partial answer"),
        (2000, Err(ModelError::Incomplete)),
    ];
    let outcome = h.reply(Ok(script(steps))).await;
    let shown = "Partial answer\n\n⚠️ reply interrupted: upstream closed the stream";
    assert_eq!(h.texts(), [shown]);
    assert_eq!(outcome.text, "Partial answer");
    assert_eq!(outcome.status, ReplyStatus::Partial);
    assert_eq!(outcome.error, Some(ModelError::Incomplete));
    assert!(outcome.reason.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_marker_after_an_open_code_block_closes_the_block_first() {
    let h = Harness::new(200);
    let steps = vec![
        content(0, "Look:\n```rust\nfn main() {"),
        (2000, Err(ModelError::Incomplete)),
    ];
    let outcome = h.reply(Ok(script(steps))).await;
    let shown =
        "Look:\n```rust\nfn main() {\n```\n\n⚠️ reply interrupted: upstream closed the stream";
    assert_eq!(h.texts(), [shown]);
    assert_eq!(
        outcome.text, "Look:\n```rust\nfn main() {",
        "the stored text has no markup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_marker_that_does_not_fit_goes_into_its_own_message() {
    let h = Harness::new(40);
    let text = "x".repeat(35);
    let steps = vec![content(0, &text), (100, Err(ModelError::Incomplete))];
    let outcome = h.reply(Ok(script(steps))).await;
    let texts = h.texts();
    assert_eq!(texts[0], text);
    assert!(texts[1].starts_with(INTERRUPTED));
    assert!(texts.iter().all(|t| t.encode_utf16().count() <= 40));
    assert_eq!(outcome.status, ReplyStatus::Partial);
}

#[tokio::test(start_paused = true)]
async fn failure_before_any_token_sends_a_short_message() {
    let h = Harness::new(200);
    let outcome = h.reply(Err(ModelError::Unauthorized)).await;
    assert_eq!(h.texts(), [ModelError::Unauthorized.user_message()]);
    assert_eq!(outcome.status, ReplyStatus::Failed);
    assert_eq!(outcome.text, "");

    let h = Harness::new(200);
    let limited = ModelError::RateLimited {
        retry_after: Some(Duration::from_secs(20)),
    };
    let outcome = h.reply(Ok(script(vec![(100, Err(limited.clone()))]))).await;
    assert_eq!(
        h.texts(),
        ["The model provider is rate limiting us — try again in 20 s."]
    );
    assert_eq!(
        (outcome.status, outcome.error),
        (ReplyStatus::Failed, Some(limited))
    );
}

#[tokio::test(start_paused = true)]
async fn forbidden_stops_without_retrying() {
    let h = Harness::new(100);
    let start = Instant::now();
    h.platform.forbid("bot was blocked by the user");
    let steps = vec![content(0, "abc"), content(60_000, "def"), finished(0)];
    let outcome = h.reply(Ok(script(steps))).await;
    let attempts = h
        .platform
        .calls()
        .into_iter()
        .filter(|c| c.kind != CallKind::Typing);
    assert_eq!(attempts.count(), 1);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(outcome.status, ReplyStatus::Partial);
    assert!(outcome.reason.unwrap().contains("forbidden"));
}

#[tokio::test(start_paused = true)]
async fn two_replies_in_one_chat_share_the_budget() {
    let h = Harness::new(300);
    let (first, steps_a) = words(40, 100);
    let (_, steps_b) = words(40, 130);
    let (a, b) = tokio::join!(h.reply(Ok(script(steps_a))), h.reply(Ok(script(steps_b))));
    assert_eq!(h.platform.rate_limited(), 0);
    assert_paced(&h.writes(), Duration::from_secs(1));
    assert_eq!(a.text, first);
    assert_eq!(
        (a.status, b.status),
        (ReplyStatus::Complete, ReplyStatus::Complete)
    );
    assert_eq!(h.texts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reply_in_a_windowed_chat_spreads_its_budget_and_its_final_text_lands_soon() {
    // A Telegram group: one call a second, 20 a minute.
    let windowed = Limits {
        window: Some(Window {
            count: 20,
            per: Duration::from_secs(60),
        }),
        ..limits(4000)
    };
    let h = Harness::with(MemoryPlatform::new(windowed));
    let start = Instant::now();
    // 90 s of tokens, a word every 225 ms.
    let (text, steps) = words(400, 225);
    let outcome = h.reply(Ok(script(steps))).await;
    let ended = start + Duration::from_millis(225 * 400);
    assert_eq!(outcome.text, text);
    assert_eq!(h.texts(), [text]);
    assert_eq!(h.platform.rate_limited(), 0);
    let writes: Vec<Instant> = h.writes().iter().map(|w| w.at).collect();
    let early = writes
        .iter()
        .filter(|at| **at < start + Duration::from_secs(20));
    assert!(
        early.count() <= 8,
        "the budget is not spent at the start: {writes:?}"
    );
    let gaps: Vec<Duration> = writes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|gap| *gap <= Duration::from_millis(3100)),
        "the reply never freezes: {gaps:?}"
    );
    let landed = *writes.last().expect("writes");
    assert!(
        landed - ended <= Duration::from_secs(3),
        "the final text landed {:?} after the model ended",
        landed - ended
    );
}

#[tokio::test(start_paused = true)]
async fn platform_answers_no_429_when_the_engine_paces() {
    let h = Harness::new(200);
    let (text, steps) = words(400, 40);
    let outcome = h.reply(Ok(script(steps))).await;
    assert_eq!(h.platform.rate_limited(), 0);
    assert_eq!(h.texts(), pieces(&text, 200));
    assert_eq!(outcome.text, text);
}

#[tokio::test(start_paused = true)]
async fn cancellation_marks_the_reply_interrupted() {
    let h = Harness::new(200);
    let cancel = h.cancel.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    let outcome = h
        .reply(Ok(script(vec![content(0, "Half"), content(60_000, "way")])))
        .await;
    assert_eq!(
        h.texts(),
        ["Half\n\n⚠️ reply interrupted: the bot restarted"]
    );
    assert_eq!(
        (outcome.status, outcome.text.as_str()),
        (ReplyStatus::Partial, "Half")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_a_shutdown_interrupts_records_all_its_text_before_its_marker_waits_for_a_slot() {
    let h = Harness::new(200);
    let cancel = h.cancel.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(2_500)).await;
        cancel.cancel();
    });
    // "Half" shows at once and "way" 2.4 s later; neither had been saved as the text so far
    // when the shutdown came.
    let steps = vec![
        content(0, "Half"),
        content(2_400, "way"),
        content(60_000, "!"),
    ];
    let outcome = h.reply(Ok(script(steps))).await;
    assert_eq!(outcome.text, "Halfway");
    let saved = h.observer.1.lock().unwrap().clone();
    assert_eq!(
        saved.last().map(String::as_str),
        Some("Halfway"),
        "{saved:?}"
    );
    assert_eq!(
        h.texts(),
        ["Halfway\n\n⚠️ reply interrupted: the bot restarted"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_press_of_stop_ends_the_reply_with_the_stopped_marker() {
    let mut h = Harness::new(200);
    let shutdown = CancellationToken::new();
    let stopper = Arc::new(Stopper::under(&shutdown));
    h.stop = Some((stop_button(MessageRowId(9)), stopper.clone()));
    let controls = Arc::new(Controls::default());
    let (chat, asker) = (chat(), UserId::new("7"));
    let pressing = controls.clone();
    let (at, by) = (chat.clone(), asker.clone());
    tokio::spawn(async move {
        sleep(Duration::from_secs(2)).await;
        let answer = pressing.stop(MessageRowId(9), &at, &by, false);
        assert_eq!(answer, StopAnswer::Stopped);
    });
    let listed = controls.list(MessageRowId(9), &chat, &asker, stopper);
    let outcome = h
        .reply(Ok(script(vec![content(0, "Half"), content(60_000, "way")])))
        .await;
    drop(listed);
    assert_eq!(h.texts(), ["Half\n\n⏹ stopped"]);
    assert_eq!(
        (
            outcome.status,
            outcome.text.as_str(),
            outcome.reason.as_deref()
        ),
        (ReplyStatus::Partial, "Half", Some(STOPPED))
    );
    assert!(!shutdown.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn cancellation_before_any_text_still_tells_the_user() {
    let h = Harness::new(200);
    h.cancel.cancel();
    let outcome = h.reply(Ok(script(vec![content(60_000, "late")]))).await;
    assert_eq!(h.texts(), ["⚠️ reply interrupted: the bot restarted"]);
    assert_eq!(outcome.status, ReplyStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn thinking_placeholder_is_replaced_by_the_answer() {
    let h = Harness::new(200);
    let mut steps: Vec<Step> = (0..20)
        .map(|_| (500, Ok(StreamEvent::Thinking("hm".into()))))
        .collect();
    steps.extend([content(0, "Answer"), finished(0)]);
    let outcome = h.reply(Ok(script(steps))).await;
    let writes = h.writes();
    assert_eq!(writes[0].text, "thinking… 3s");
    assert!(writes.iter().any(|c| c.text == "thinking… 8s"));
    assert!(
        writes
            .iter()
            .all(|c| c.message == Some(MessageRef::new("1")))
    );
    assert_eq!(h.texts(), ["Answer"]);
    assert_eq!(outcome.messages, [MessageRef::new("1")]);
    let typing = h
        .platform
        .calls()
        .into_iter()
        .filter(|c| c.kind == CallKind::Typing)
        .count();
    assert!(typing >= 2, "typing refreshed while thinking: {typing}");
}

#[tokio::test(start_paused = true)]
async fn usage_is_summed_into_the_outcome() {
    let h = Harness::new(200);
    let usage = Usage {
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 8,
        reasoning_tokens: 2,
    };
    let steps = vec![
        content(0, "ok"),
        finished(0),
        (0, Ok(StreamEvent::Usage(usage))),
    ];
    let outcome = h.reply(Ok(script(steps))).await;
    assert_eq!(outcome.usage, usage);
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_without_finishing_is_partial() {
    let h = Harness::new(200);
    let outcome = h.reply(Ok(script(vec![content(0, "cut")]))).await;
    assert_eq!(outcome.status, ReplyStatus::Partial);
    assert_eq!(outcome.error, Some(ModelError::Incomplete));
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_platform_is_retried_for_the_final_text() {
    let h = Harness::new(200);
    h.platform
        .fail_next(3, PlatformError::Unavailable("502".into()));
    let outcome = h
        .reply(Ok(script(vec![content(0, "done"), finished(0)])))
        .await;
    assert_eq!(h.texts(), ["done"]);
    assert_eq!(outcome.status, ReplyStatus::Complete);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_final_is_tried_once_more_then_reported() {
    let h = Harness::new(200);
    h.platform
        .fail_next(5, PlatformError::Rejected("can't parse entities".into()));
    let outcome = h
        .reply(Ok(script(vec![content(0, "bad *markup"), finished(0)])))
        .await;
    let attempts = h
        .platform
        .calls()
        .into_iter()
        .filter(|c| c.kind != CallKind::Typing);
    assert_eq!(attempts.count(), 3, "one preview, two finals");
    assert_eq!(outcome.status, ReplyStatus::Partial);
    assert!(outcome.reason.unwrap().contains("could not be delivered"));
}

#[tokio::test(start_paused = true)]
async fn a_finished_message_records_the_text_so_far() {
    let h = Harness::new(60);
    let (text, steps) = words(25, 50);
    h.reply(Ok(script(steps))).await;
    let saved = h.observer.1.lock().unwrap().clone();
    assert!(!saved.is_empty(), "each roll-over records the text");
    assert!(saved.len() < 10, "not per token: {}", saved.len());
    assert!(saved.iter().all(|t| text.starts_with(t.as_str())));
}

#[tokio::test(start_paused = true)]
async fn a_slow_message_records_its_text_every_few_seconds() {
    let h = Harness::new(1000);
    let (text, steps) = words(30, 500);
    h.reply(Ok(script(steps))).await;
    let saved = h.observer.1.lock().unwrap().clone();
    assert!(
        (3..=6).contains(&saved.len()),
        "{} records over 15 s",
        saved.len()
    );
    assert!(saved.windows(2).all(|w| w[1].len() > w[0].len()));
    assert!(saved.iter().all(|t| text.starts_with(t.as_str())));
}

#[tokio::test(start_paused = true)]
async fn tokens_that_arrive_while_a_preview_waits_are_read_in_one_catch_up() {
    let h = Harness::new(1000);
    let (text, steps) = words(30, 100);
    let (outcome, reads) = h.reply_noting_reads(steps).await;
    assert_eq!(outcome.text, text);
    let mut wakeups = reads;
    wakeups.dedup();
    assert!(
        wakeups.len() <= 10,
        "{} wake-ups to read 31 events",
        wakeups.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_for_the_first_slot_reads_in_slices() {
    let h = Harness::new(1000);
    // The chat is paused for 8 s (a 429's retry-after): nothing can be shown before then.
    h.pacer.pause(&chat(), &limits(100), Duration::from_secs(8));
    let start = Instant::now();
    let (text, steps) = words(60, 100);
    let (outcome, reads) = h.reply_noting_reads(steps).await;
    assert_eq!(outcome.text, text);
    let writes = h.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(h.texts(), std::slice::from_ref(&text));
    let mut wakeups = reads;
    wakeups.dedup();
    // 61 events over 6 s: read in a drain every 2 s and once before the slot, not one by one.
    assert!(
        wakeups.len() <= 12,
        "{} wake-ups to read 61 events",
        wakeups.len()
    );
    // Between drains the socket holds at most a slice of tokens.
    let gaps = wakeups.windows(2).map(|w| w[1] - w[0]);
    assert!(
        gaps.clone().all(|g| g <= Duration::from_millis(2100)),
        "{wakeups:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn after_a_preview_the_stream_is_left_unread_until_shortly_before_the_next_slot() {
    let h = Harness::new(4000);
    let (text, steps) = words(150, 20);
    let (outcome, reads) = h.reply_noting_reads(steps).await;
    assert_eq!(outcome.text, text);
    assert_eq!(h.texts(), std::slice::from_ref(&text));
    let previews: Vec<Instant> = h.writes().iter().map(|w| w.at).collect();
    assert!(previews.len() >= 3, "{previews:?}");
    // Nothing can be shown before the next slot (1 s later): a read in between would be a
    // wake-up for nothing. Reading resumes 20 ms before the slot.
    for preview in &previews {
        let early = reads
            .iter()
            .filter(|r| **r > *preview && **r < *preview + Duration::from_millis(950));
        assert_eq!(early.count(), 0, "reads {reads:?} previews {previews:?}");
    }
}

/// Notes what the reply told the transport, and whether it was held at each read.
#[derive(Default)]
struct HoldLog {
    held: std::sync::atomic::AtomicBool,
    changes: Mutex<Vec<(Instant, bool)>>,
    reads_while_held: std::sync::atomic::AtomicUsize,
}

impl HoldLog {
    fn note(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::SeqCst);
        self.changes.lock().unwrap().push((Instant::now(), held));
    }
}

struct LoggedHold(Arc<HoldLog>);

impl crate::engine::ports::Hold for LoggedHold {
    fn hold(&self) {
        self.0.note(true);
    }

    fn release(&self) {
        self.0.note(false);
    }
}

/// `steps` as a stream whose transport notes holds in the returned log; `on_read` sees each
/// item read.
fn held_script(
    steps: Vec<Step>,
    mut on_read: impl FnMut(&Result<StreamEvent, ModelError>) + Send + 'static,
) -> (TokenStream, Arc<HoldLog>) {
    let log = Arc::new(HoldLog::default());
    let seen = log.clone();
    let stream = script(steps).inspect(move |item| {
        on_read(item);
        if seen.held.load(std::sync::atomic::Ordering::SeqCst) {
            seen.reads_while_held
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let stream = TokenStream::new(stream).with_hold(Box::new(LoggedHold(log.clone())));
    (stream, log)
}

#[tokio::test(start_paused = true)]
async fn the_transport_is_held_between_slots_and_never_read_while_held() {
    let h = Harness::new(4000);
    let (text, steps) = words(150, 20);
    let (stream, log) = held_script(steps, |_| {});
    let outcome = h.reply(Ok(stream)).await;
    assert_eq!(outcome.text, text);
    assert_eq!(h.texts(), std::slice::from_ref(&text));
    // A held transport announces nothing: a read then would wait for data that never comes.
    let reads_while_held = log
        .reads_while_held
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads_while_held, 0);
    let changes = log.changes.lock().unwrap().clone();
    // 3 s of tokens at one preview a second: held between the slots, released before each.
    let holds = changes.iter().filter(|(_, held)| *held).count();
    assert!(holds >= 2, "{changes:?}");
    assert!(changes.windows(2).all(|w| w[0].1 != w[1].1), "{changes:?}");
    assert_eq!(changes.last().map(|c| c.1), Some(false), "{changes:?}");
    // Each hold starts with a preview (nothing more can be shown before the next slot) and
    // lasts until shortly before that slot.
    let previews: Vec<Instant> = h.writes().iter().map(|w| w.at).collect();
    for pair in changes.chunks(2) {
        assert!(previews.contains(&pair[0].0), "{changes:?} {previews:?}");
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(950),
            "{changes:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_transport_is_not_held_once_the_model_has_finished() {
    let h = Harness::new(4000);
    let (text, mut steps) = words(60, 20);
    // The usage report comes well after the finish reason, past the next preview slot.
    steps.push((1500, Ok(StreamEvent::Usage(Usage::default()))));
    let finished_at = Arc::new(Mutex::new(None));
    let seen = finished_at.clone();
    let (stream, log) = held_script(steps, move |item| {
        if matches!(item, Ok(StreamEvent::Finished(_))) {
            *seen.lock().unwrap() = Some(Instant::now());
        }
    });
    let outcome = h.reply(Ok(stream)).await;
    assert_eq!(outcome.text, text);
    let finished_at = finished_at.lock().unwrap().expect("the finish was read");
    let changes = log.changes.lock().unwrap().clone();
    assert!(changes.iter().any(|(_, held)| *held), "{changes:?}");
    // Held after the finish, the connection could go back to its pool still quiet.
    assert!(
        changes.iter().all(|(at, held)| !held || *at < finished_at),
        "{changes:?} finished at {finished_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_preview_that_waits_for_the_bot_wide_budget_counts_as_deferred_not_as_a_429() {
    crate::metrics::meter_engine();
    let recorder = crate::metrics::recorder().expect("valid buckets");
    let handle = recorder.handle();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let budgeted = Limits {
        bot: Some(Window {
            count: 1,
            per: Duration::from_secs(1),
        }),
        ..limits(100)
    };
    let h = Harness::with(MemoryPlatform::new(budgeted));
    // Another chat has just used the bot-wide budget.
    let other = ChatKey::new(PlatformKind::Telegram, "other");
    h.pacer.acquire(&other, &budgeted, Urgency::Final).await;
    let start = Instant::now();
    let outcome = h
        .reply(Ok(script(vec![
            content(0, "Hello"),
            content(1500, " world"),
            finished(0),
        ])))
        .await;
    assert_eq!(outcome.status, ReplyStatus::Complete);
    assert_eq!(h.texts(), ["Hello world"]);
    let first = h.writes()[0].at - start;
    assert_eq!(first, Duration::from_secs(1) + crate::engine::pace::JITTER);
    assert_eq!(h.platform.rate_limited(), 0);
    let text = handle.render();
    let metric = |name: &str, kind: &str| {
        let prefix = format!(r#"{name}{{platform="telegram",kind="{kind}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.to_string())
    };
    assert_eq!(
        metric("parley_platform_deferred_total", "send").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric("parley_platform_rate_limited_total", "send"),
        None,
        "{text}"
    );
    let sends = metric("parley_platform_calls_total", "send");
    assert_eq!(
        sends.as_deref(),
        Some("1"),
        "only the call that was made: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn where_typing_costs_a_bot_wide_slot_it_waits_for_a_slow_or_thinking_model() {
    let counted = Limits {
        bot: Some(Window {
            count: 50,
            per: Duration::from_secs(1),
        }),
        typing_counts: true,
        ..limits(100)
    };
    let typing = |h: &Harness| {
        let calls = h.platform.calls().into_iter();
        calls.filter(|c| c.kind == CallKind::Typing).count()
    };
    // Text within a second: no typing, the slot goes to the text.
    let h = Harness::with(MemoryPlatform::new(counted));
    h.reply(Ok(script(vec![content(300, "Hi"), finished(0)])))
        .await;
    assert_eq!(typing(&h), 0);
    // A model that thinks first: typing at once.
    let h = Harness::with(MemoryPlatform::new(counted));
    let start = Instant::now();
    let steps = vec![
        (0, Ok(StreamEvent::Thinking("hmm".into()))),
        content(2000, "Hi"),
        finished(0),
    ];
    h.reply(Ok(script(steps))).await;
    let calls = h.platform.calls();
    let first = calls.iter().find(|c| c.kind == CallKind::Typing);
    assert_eq!(first.map(|c| c.at - start), Some(Duration::ZERO));
    // A slow model that shows nothing: typing after a second.
    let h = Harness::with(MemoryPlatform::new(counted));
    let start = Instant::now();
    h.reply(Ok(script(vec![content(2500, "Hi"), finished(0)])))
        .await;
    let calls = h.platform.calls();
    let first = calls.iter().find(|c| c.kind == CallKind::Typing);
    assert_eq!(first.map(|c| c.at - start), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn a_preview_waiting_for_the_bot_wide_budget_leaves_the_stream_unread_then_catches_up() {
    let budgeted = Limits {
        bot: Some(Window {
            count: 1,
            per: Duration::from_secs(1),
        }),
        ..limits(4000)
    };
    let h = Harness::with(MemoryPlatform::new(budgeted));
    let other = ChatKey::new(PlatformKind::Telegram, "other");
    h.pacer.acquire(&other, &budgeted, Urgency::Final).await;
    let start = Instant::now();
    // A word every 20 ms from the start; the first slot comes at 1.1 s.
    let (text, mut steps) = words(100, 20);
    steps[0].0 = 0;
    let (outcome, reads) = h.reply_noting_reads(steps).await;
    assert_eq!(outcome.text, text);
    // While the slot is waited for, the stream is read only in a drain between slices (what
    // came meanwhile, at once), not as each word comes: a handful of wake-ups, not fifty.
    let mut wakeups: Vec<Instant> = reads
        .iter()
        .copied()
        .filter(|r| {
            let at = *r - start;
            at > Duration::from_millis(50) && at < Duration::from_millis(1050)
        })
        .collect();
    wakeups.dedup();
    assert!(wakeups.len() <= 4, "woken at {wakeups:?}");
    let first = &h.writes()[0];
    assert_eq!(
        first.at - start,
        Duration::from_secs(1) + crate::engine::pace::JITTER
    );
    assert!(
        first.text.contains("word50"),
        "the preview shows what came while it waited: {}",
        first.text
    );
}
