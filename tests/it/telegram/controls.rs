//! Reply controls through Telegram: Stop as an inline button (groups, private chats streamed
//! with edits) and as the draft's own stop control, refused for someone else.

use std::time::Duration;

use serde_json::Value;

use super::Harness;
use crate::fake_llm::Script;
use crate::fake_telegram::{FakeTelegram, Sent, User, group, private};
use crate::support::stored_replies;

/// A long answer that takes about six seconds to stream.
fn long_answer() -> Script {
    let text: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    Script::reply(text.join(" "))
        .chunk_chars(6)
        .delay(Duration::from_millis(30))
}

/// The methods called since the `index`th call, polling left out.
pub fn methods_since(tg: &FakeTelegram, index: usize) -> Vec<String> {
    let calls = tg.calls().into_iter().skip(index);
    calls
        .map(|c| c.method)
        .filter(|m| m != "getupdates")
        .collect()
}

/// The data of every inline button under `message`.
pub fn button_data(message: &Sent) -> Vec<String> {
    let Some(markup) = message.markup.as_ref() else {
        return Vec::new();
    };
    let rows = markup["inline_keyboard"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let buttons = rows.iter().filter_map(Value::as_array).flatten();
    let data = buttons.filter_map(|b| b["callback_data"].as_str());
    data.map(String::from).collect()
}

/// The data of the Stop button under `message`, if it has one.
fn stop_data(message: &Sent) -> Option<String> {
    button_data(message)
        .into_iter()
        .find(|d| d.starts_with("stop:"))
}

/// Waits for the reply in `chat` to show a Stop button; the message and the button's data.
async fn streaming_with_stop(tg: &FakeTelegram, chat: i64) -> (Sent, String) {
    tg.wait_for(10, "a Stop button on the streaming reply", |tg| {
        tg.messages(chat).iter().any(|m| stop_data(m).is_some())
    })
    .await;
    let message = tg
        .messages(chat)
        .into_iter()
        .find(|m| stop_data(m).is_some());
    let message = message.expect("the streaming reply");
    let data = stop_data(&message).expect("its Stop button");
    (message, data)
}

/// Waits until the reply was stopped: its last message ends with the marker and keeps no
/// button, the stored row is partial with reason `stopped`, and the stream's connection closed.
async fn assert_stopped(harness: &mut Harness, chat: i64) -> String {
    let tg = &harness.tg;
    tg.wait_for(10, "the stopped marker", |tg| {
        tg.messages(chat)
            .last()
            .is_some_and(|m| m.text.ends_with("⏹ stopped"))
    })
    .await;
    let last = tg.messages(chat).last().cloned().expect("the reply");
    assert_eq!(stop_data(&last), None, "no Stop button after the stop");
    let buttons = button_data(&last);
    assert!(
        buttons.len() == 1 && buttons[0].starts_with("regen:"),
        "{buttons:?}"
    );
    assert!(last.text.starts_with("w0 w1"), "{}", last.text);
    assert!(
        !last.text.contains("w299"),
        "stopped before the end: {}",
        last.text
    );
    let llm = &harness.llm;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while llm.streams_dropped() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream's connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.stop().await;
    let rows = stored_replies(&harness.db()).await;
    let (status, reason, content) = rows.last().cloned().expect("the reply row");
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("partial", Some("stopped"))
    );
    assert!(
        content.starts_with("w0 w1") && !content.contains('⏹'),
        "{content}"
    );
    last.text
}

#[tokio::test]
async fn the_asker_stops_a_reply_in_a_group_with_the_inline_button() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1701, "Alice"), group(-1001701, None));
    harness.llm.push(long_answer());
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot tell me a long story");
    let (message, data) = streaming_with_stop(&harness.tg, room.id).await;
    let before = harness.tg.calls().len();
    let said = harness
        .tg
        .press_answered(&room, &alice, message.id, &data)
        .await;
    assert_eq!(said, "Stopping.");
    assert_stopped(&mut harness, room.id).await;
    assert_eq!(harness.tg.too_many_requests(), 0);
    // What the stop cost on the platform: the press's answer and one final edit (a preview
    // already granted its slot may still go first).
    let calls = methods_since(&harness.tg, before);
    let count = |m: &str| calls.iter().filter(|c| *c == m).count();
    assert_eq!(count("answercallbackquery"), 1, "{calls:?}");
    assert!((1..=2).contains(&count("editmessagetext")), "{calls:?}");
    assert_eq!(
        calls.len(),
        count("answercallbackquery") + count("editmessagetext"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn someone_else_pressing_stop_gets_a_private_answer_and_nothing_stops() {
    let mut harness = Harness::new().await;
    let (alice, bob) = (User::new(1702, "Alice"), User::new(1703, "Bob"));
    let room = group(-1001702, None);
    let text: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let answer = text.join(" ");
    harness.llm.push(
        Script::reply(answer.clone())
            .chunk_chars(6)
            .delay(Duration::from_millis(40)),
    );
    harness.tg.user_writes(&room, &alice, "@parley_bot a story");
    let (message, data) = streaming_with_stop(&harness.tg, room.id).await;
    let said = harness
        .tg
        .press_answered(&room, &bob, message.id, &data)
        .await;
    let tg = &harness.tg;
    assert!(said.contains("Only the person who asked"), "{said}");
    tg.wait_for(
        10,
        "the whole answer, its final text without the Stop button",
        |tg| {
            let last = tg.messages(room.id).last().cloned();
            last.is_some_and(|m| m.text == answer && stop_data(&m).is_none())
        },
    )
    .await;
    // The refusal was private: no message in the group says so.
    assert_eq!(tg.messages(room.id).len(), 1);
    assert_eq!(harness.llm.streams_dropped(), 0);
    harness.stop().await;
    let rows = stored_replies(&harness.db()).await;
    assert_eq!(rows.last().map(|r| r.0.as_str()), Some("complete"));
}

#[tokio::test]
async fn a_group_admin_may_stop_someone_elses_reply() {
    let mut harness = Harness::new().await;
    let (alice, carol) = (User::new(1704, "Alice"), User::new(1705, "Carol"));
    let room = group(-1001704, None);
    harness.tg.make_admin(room.id, carol.id);
    harness.llm.push(long_answer());
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot go on and on");
    let (message, data) = streaming_with_stop(&harness.tg, room.id).await;
    let said = harness
        .tg
        .press_answered(&room, &carol, message.id, &data)
        .await;
    assert_eq!(said, "Stopping.");
    assert_stopped(&mut harness, room.id).await;
}

#[tokio::test]
async fn the_asker_stops_a_private_reply_streamed_with_edits() {
    let mut harness = Harness::new().await;
    harness.tg.refuse_drafts();
    let alice = User::new(1706, "Alice");
    let chat = private(&alice);
    harness.llm.push(long_answer());
    harness.tg.user_writes(&chat, &alice, "a long one please");
    let (message, data) = streaming_with_stop(&harness.tg, chat.id).await;
    let said = harness
        .tg
        .press_answered(&chat, &alice, message.id, &data)
        .await;
    assert_eq!(said, "Stopping.");
    assert_stopped(&mut harness, chat.id).await;
}

#[tokio::test]
async fn the_asker_stops_a_draft_with_telegrams_own_stop_control() {
    let mut harness = Harness::new().await;
    let alice = User::new(1707, "Alice");
    let chat = private(&alice);
    harness.llm.push(long_answer());
    harness.tg.user_writes(&chat, &alice, "a long one please");
    let tg = &harness.tg;
    tg.wait_for(10, "the draft streaming", |tg| {
        !tg.drafts(chat.id).is_empty()
    })
    .await;
    let drafts = tg.calls_of("sendMessageDraft");
    assert!(
        drafts.iter().all(|c| c.body["can_stop"] == true),
        "every draft offers the stop"
    );
    assert!(drafts.iter().all(|c| c.body.get("reply_markup").is_none()));
    assert!(
        tg.stop_draft(&chat),
        "a draft offered Telegram's stop control"
    );
    let text = assert_stopped(&mut harness, chat.id).await;
    assert_eq!(
        harness.tg.messages(chat.id).len(),
        1,
        "one final message: {text}"
    );
}
