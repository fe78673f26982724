//! Regenerate and Continue through Telegram: the buttons of the last reply, the request they
//! send, where the new text shows, what is stored, and presses on a reply no longer the last.

use serde_json::Value;

use super::Harness;
use super::controls::{button_data, methods_since};
use crate::fake_llm::Script;
use crate::fake_telegram::{ChatRef, FakeTelegram, Sent, User, group};
use crate::support::{stored_alternatives, stored_replies};

/// The buttons of a reply with two answers or more: ◀, k/N, ▶, Regenerate.
const BROWSING: &[&str] = &["alt:", "alt:", "alt:", "regen:"];

/// The data of the Regenerate button under `message`.
fn regenerate(message: &Sent) -> String {
    let data = button_data(message)
        .into_iter()
        .find(|d| d.starts_with("regen:"));
    data.expect("a Regenerate button")
}

/// Waits until the bot's last message in `chat` reads `text` with exactly buttons whose data
/// start with `kinds` (in order); returns it.
async fn until_shown(tg: &FakeTelegram, chat: i64, text: &str, kinds: &[&str]) -> Sent {
    let matches = |m: &Sent| {
        let data = button_data(m);
        m.text == text
            && data.len() == kinds.len()
            && data.iter().zip(kinds).all(|(d, k)| d.starts_with(k))
    };
    let what = format!("{text:?} with buttons {kinds:?}");
    tg.wait_for(10, &what, |tg| {
        tg.messages(chat).last().is_some_and(matches)
    })
    .await;
    tg.messages(chat).last().cloned().unwrap()
}

/// Presses the button `data` until the press is taken: right after a regenerate shows, the
/// reply may still be claimed by it for a moment ("Already on it.").
async fn press_until_taken(
    tg: &FakeTelegram,
    room: &ChatRef,
    who: &User,
    message: i64,
    data: &str,
) {
    for _ in 0..100 {
        let said = tg.press_answered(room, who, message, data).await;
        if said != parley::engine::controls::ALREADY {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the press was never taken");
}

/// `who` asks in `room` and the model answers `text`; the answer with its Regenerate button.
async fn answered(harness: &Harness, room: &ChatRef, who: &User, text: &str) -> Sent {
    harness.llm.push(Script::reply(text));
    harness.tg.user_writes(room, who, "@parley_bot a question");
    until_shown(&harness.tg, room.id, text, &["regen:"]).await
}

/// `who` asks again after two requests: the third extends the second byte for byte (as JSON
/// values) with `shown` as the reply.
async fn next_turn_goes_on_from(harness: &Harness, room: &ChatRef, who: &User, shown: &str) {
    harness.tg.user_writes(room, who, "@parley_bot and then?");
    harness.wait_for_requests(3).await;
    let (asked, next) = (messages(harness, 1), messages(harness, 2));
    assert_eq!(
        next[..asked.len()],
        asked[..],
        "the next request extends the last"
    );
    assert_eq!(next[asked.len()]["role"], "assistant");
    assert_eq!(next[asked.len()]["content"], shown);
}

/// The messages of the completion request `index`.
fn messages(harness: &Harness, index: usize) -> Vec<Value> {
    let body = &harness.llm_bodies()[index];
    body["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn regenerate_resends_the_same_request_bytes_and_shows_the_new_answer_in_place() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1801, "Alice"), group(-1001801, None));
    let first = answered(&harness, &room, &alice, "The first answer.").await;
    harness.llm.push(Script::reply("A better answer."));
    let data = button_data(&first)[0].clone();
    let before = harness.tg.calls().len();
    let said = harness
        .tg
        .press_answered(&room, &alice, first.id, &data)
        .await;
    assert_eq!(said, "Regenerating…");
    let tg = &harness.tg;
    let shown = until_shown(tg, room.id, "A better answer.", BROWSING).await;
    assert_eq!(shown.id, first.id, "in place of the old answer");
    assert_eq!(tg.messages(room.id).len(), 1);
    // What it cost: the press's answer and the stream's edits of the same message, no send.
    let calls = methods_since(tg, before);
    let count = |m: &str| calls.iter().filter(|c| *c == m).count();
    assert_eq!(count("answercallbackquery"), 1, "{calls:?}");
    assert!(count("editmessagetext") >= 1, "{calls:?}");
    let typing = count("sendchataction");
    assert_eq!(
        calls.len(),
        1 + typing + count("editmessagetext"),
        "{calls:?}"
    );
    let before_next = tg.calls().len();
    let requests = harness.llm.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].raw, requests[0].raw, "the same request bytes");
    // The next turn continues from the answer shown, extending the request it came from.
    next_turn_goes_on_from(&harness, &room, &alice, "A better answer.").await;
    let tg = &harness.tg;
    tg.wait_for(10, "the older reply's buttons removed", |tg| {
        let old = tg.message(room.id, first.id);
        old.is_some_and(|m| m.markup.is_none()) && tg.messages(room.id).len() == 2
    })
    .await;
    assert_eq!(tg.too_many_requests(), 0);
    let calls = methods_since(tg, before_next);
    let markups = calls
        .iter()
        .filter(|c| *c == "editmessagereplymarkup")
        .count();
    assert_eq!(
        markups, 1,
        "one edit takes the older reply's buttons: {calls:?}"
    );
    harness.stop().await;
    let replies = stored_replies(&harness.db()).await;
    assert_eq!(replies[0].0, "complete");
    assert_eq!(replies[0].2, "A better answer.");
    let alternatives = stored_alternatives(&harness.db()).await;
    let kept: Vec<&str> = alternatives.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(kept, ["The first answer.", "A better answer."]);
}

#[tokio::test]
async fn continue_after_a_cut_streams_into_a_new_message_and_stores_the_whole_text() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1802, "Alice"), group(-1001802, None));
    harness
        .llm
        .push(Script::reply("The first half,").finish_reason("length"));
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot a long one");
    let cut = until_shown(
        &harness.tg,
        room.id,
        "The first half,",
        &["regen:", "cont:"],
    )
    .await;
    harness.llm.push(Script::reply(" and the second half."));
    let data = button_data(&cut)[1].clone();
    let before = harness.tg.calls().len();
    let said = harness
        .tg
        .press_answered(&room, &alice, cut.id, &data)
        .await;
    assert_eq!(said, "Continuing…");
    let tg = &harness.tg;
    until_shown(tg, room.id, "and the second half.", &["regen:"]).await;
    let all = tg.messages(room.id);
    assert_eq!(
        all.len(),
        2,
        "the continuation is a new message after the cut one"
    );
    assert!(all[0].markup.is_none(), "the cut message's buttons went");
    let calls = methods_since(tg, before);
    let count = |m: &str| calls.iter().filter(|c| *c == m).count();
    let fixed = [
        "answercallbackquery",
        "editmessagereplymarkup",
        "sendmessage",
    ];
    assert!(fixed.iter().all(|m| count(m) == 1), "{calls:?}");
    let (typing, edits) = (count("sendchataction"), count("editmessagetext"));
    assert_eq!(calls.len(), 3 + typing + edits, "{calls:?}");
    let asked = messages(&harness, 1);
    let n = asked.len();
    assert_eq!(asked[n - 2]["role"], "assistant");
    assert_eq!(asked[n - 2]["content"], "The first half,");
    let prompt = asked[n - 1]["content"].as_str().unwrap_or("");
    assert!(
        prompt.contains(parley::engine::controls::CONTINUE_PROMPT),
        "{prompt}"
    );
    harness.stop().await;
    let replies = stored_replies(&harness.db()).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].2, "The first half, and the second half.");
}

#[tokio::test]
async fn a_press_on_a_reply_that_is_no_longer_the_last_answers_briefly_and_asks_nothing() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1803, "Alice"), group(-1001803, None));
    let first = answered(&harness, &room, &alice, "One.").await;
    let stale = button_data(&first)[0].clone();
    harness.llm.push(Script::reply("Two."));
    harness.tg.user_writes(&room, &alice, "@parley_bot second");
    until_shown(&harness.tg, room.id, "Two.", &["regen:"]).await;
    let said = harness
        .tg
        .press_answered(&room, &alice, first.id, &stale)
        .await;
    let tg = &harness.tg;
    assert!(said.contains("no longer the last reply"), "{said}");
    // After a reset no reply is the last one either.
    tg.user_writes(&room, &alice, "/reset");
    tg.wait_for(10, "the reset notice", |tg| tg.messages(room.id).len() == 3)
        .await;
    let last = tg.messages(room.id)[1].clone();
    let data = button_data(&last)[0].clone();
    let said = tg.press_answered(&room, &alice, last.id, &data).await;
    assert!(said.contains("no longer the last reply"), "{said}");
    assert_eq!(
        harness.llm.requests().len(),
        2,
        "nothing asked of the model"
    );
    harness.stop().await;
}

/// A text of `count` words: `word0 word1 ...`.
fn words(count: usize) -> String {
    let words: Vec<String> = (0..count).map(|i| format!("word{i}")).collect();
    words.join(" ")
}

#[tokio::test]
async fn regenerate_fits_an_answer_needing_more_or_fewer_messages_than_the_old_one() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1804, "Alice"), group(-1001804, None));
    // About 5,900 characters: two Telegram messages.
    harness.llm.push(Script::reply(words(700)).chunk_chars(400));
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot a long one");
    let tg = &harness.tg;
    tg.wait_for(10, "the long answer's buttons", |tg| {
        let all = tg.messages(room.id);
        all.len() == 2 && !button_data(&all[1]).is_empty()
    })
    .await;
    let long = tg.messages(room.id);
    let data = button_data(&long[1])[0].clone();
    harness.llm.push(Script::reply("Short now."));
    let said = harness
        .tg
        .press_answered(&room, &alice, long[1].id, &data)
        .await;
    assert_eq!(said, "Regenerating…");
    let tg = &harness.tg;
    let short = until_shown(tg, room.id, "Short now.", BROWSING).await;
    assert_eq!(
        short.id, long[0].id,
        "the first message shows the new answer"
    );
    assert_eq!(
        tg.messages(room.id).len(),
        1,
        "the message it no longer needs is deleted"
    );
    // And back: a long answer needs a message more than the short one had.
    harness.llm.push(Script::reply(words(700)).chunk_chars(400));
    let data = regenerate(&short);
    press_until_taken(&harness.tg, &room, &alice, short.id, &data).await;
    let tg = &harness.tg;
    tg.wait_for(10, "the long answer again, in two messages", |tg| {
        let all = tg.messages(room.id);
        let text: String = all
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        all.len() == 2 && text == words(700) && !button_data(&all[1]).is_empty()
    })
    .await;
    assert_eq!(tg.messages(room.id)[0].id, short.id);
    assert_eq!(tg.too_many_requests(), 0);
    harness.stop().await;
}

#[tokio::test]
async fn the_regenerate_button_works_after_a_restart() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1805, "Alice"), group(-1001805, None));
    let first = answered(&harness, &room, &alice, "Before the restart.").await;
    harness.stop().await;
    harness.start().await.expect("the bot starts again");
    harness.llm.push(Script::reply("After the restart."));
    let data = button_data(&first)[0].clone();
    let said = harness
        .tg
        .press_answered(&room, &alice, first.id, &data)
        .await;
    assert_eq!(said, "Regenerating…");
    let tg = &harness.tg;
    let shown = until_shown(tg, room.id, "After the restart.", BROWSING).await;
    assert_eq!(shown.id, first.id);
    let requests = harness.llm.requests();
    assert_eq!(requests[1].raw, requests[0].raw);
    harness.stop().await;
}

#[tokio::test]
async fn ten_fast_presses_of_regenerate_regenerate_once_without_a_429() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1806, "Alice"), group(-1001806, None));
    let first = answered(&harness, &room, &alice, "The first answer.").await;
    let slow = Script::reply("A slower second answer.").delay(std::time::Duration::from_millis(30));
    harness.llm.push(slow);
    let data = button_data(&first)[0].clone();
    let presses: Vec<String> = (0..10)
        .map(|_| harness.tg.press(&room, &alice, first.id, &data))
        .collect();
    let tg = &harness.tg;
    tg.wait_for(10, "every press answered", |tg| {
        presses.iter().all(|p| tg.callback_answered(p))
    })
    .await;
    let answers: Vec<String> = presses.iter().filter_map(|p| tg.callback_text(p)).collect();
    let started = answers.iter().filter(|a| *a == "Regenerating…").count();
    assert_eq!(started, 1, "{answers:?}");
    until_shown(tg, room.id, "A slower second answer.", BROWSING).await;
    assert_eq!(harness.llm.requests().len(), 2, "one regenerate");
    assert_eq!(tg.too_many_requests(), 0);
    harness.stop().await;
}

/// The data of the button labelled `label` under `message`.
fn button(message: &Sent, label: &str) -> String {
    let markup = message.markup.clone().unwrap_or_default();
    let rows = markup["inline_keyboard"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let buttons = rows.iter().filter_map(Value::as_array).flatten();
    let found = buttons.clone().find(|b| b["text"] == label);
    let data = found.and_then(|b| b["callback_data"].as_str().map(String::from));
    data.unwrap_or_else(|| panic!("no {label} button: {markup}"))
}

#[tokio::test]
async fn browsing_shows_each_answer_in_place_and_the_next_turn_goes_on_from_the_one_shown() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1807, "Alice"), group(-1001807, None));
    let first = answered(&harness, &room, &alice, "Short first.").await;
    // The second answer needs two messages.
    harness.llm.push(Script::reply(words(700)).chunk_chars(400));
    let said = harness
        .tg
        .press_answered(&room, &alice, first.id, &regenerate(&first))
        .await;
    assert_eq!(said, "Regenerating…");
    let tg = &harness.tg;
    tg.wait_for(10, "the long answer, 2/2", |tg| {
        let all = tg.messages(room.id);
        all.len() == 2 && button_data(&all[1]).len() == 4
    })
    .await;
    let long = tg.messages(room.id);
    assert_eq!(long[0].id, first.id);
    // ◀: the short answer, in the first message; the second goes.
    let said = tg
        .press_answered(&room, &alice, long[1].id, &button(&long[1], "◀"))
        .await;
    assert_eq!(said, "Showing answer 1.");
    let short = until_shown(tg, room.id, "Short first.", BROWSING).await;
    assert_eq!((short.id, tg.messages(room.id).len()), (first.id, 1));
    assert_eq!(button(&short, "1/2"), button(&short, "1/2"));
    // ▶: the long one again, in two messages.
    let said = tg
        .press_answered(&room, &alice, short.id, &button(&short, "▶"))
        .await;
    assert_eq!(said, "Showing answer 2.");
    tg.wait_for(10, "the long answer shown again", |tg| {
        let all = tg.messages(room.id);
        let text: Vec<&str> = all.iter().map(|m| m.text.as_str()).collect();
        all.len() == 2 && text.join(" ") == words(700) && button_data(&all[1]).len() == 4
    })
    .await;
    let long = tg.messages(room.id);
    // And back to the short one: the next turn goes on from it.
    tg.press_answered(&room, &alice, long[1].id, &button(&long[1], "◀"))
        .await;
    until_shown(tg, room.id, "Short first.", BROWSING).await;
    assert_eq!(
        harness.llm.requests().len(),
        2,
        "browsing asks the model nothing"
    );
    next_turn_goes_on_from(&harness, &room, &alice, "Short first.").await;
    assert_eq!(harness.tg.too_many_requests(), 0);
    harness.stop().await;
}

#[tokio::test]
async fn ten_fast_presses_of_the_arrows_end_on_the_last_pressed_without_a_429() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1808, "Alice"), group(-1001808, None));
    let first = answered(&harness, &room, &alice, "Answer one.").await;
    harness.llm.push(Script::reply("Answer two."));
    harness
        .tg
        .press_answered(&room, &alice, first.id, &regenerate(&first))
        .await;
    let second = until_shown(&harness.tg, room.id, "Answer two.", BROWSING).await;
    harness.llm.push(Script::reply("Answer three."));
    let again = regenerate(&second);
    press_until_taken(&harness.tg, &room, &alice, second.id, &again).await;
    let shown = until_shown(&harness.tg, room.id, "Answer three.", BROWSING).await;
    // At 3/3, ◀ asks for answer 2 and ▶ for answer 1.
    let (back, forth) = (button(&shown, "◀"), button(&shown, "▶"));
    let before = harness.tg.calls().len();
    // ◀ ▶ ◀ ▶ … ▶: the last press asks for answer 1.
    let presses: Vec<String> = (0..10)
        .map(|i| {
            let data = if i % 2 == 0 { &back } else { &forth };
            harness.tg.press(&room, &alice, shown.id, data)
        })
        .collect();
    let tg = &harness.tg;
    tg.wait_for(10, "every press answered", |tg| {
        presses.iter().all(|p| tg.callback_answered(p))
    })
    .await;
    let last = presses.last().and_then(|p| tg.callback_text(p));
    assert_eq!(last.as_deref(), Some("Showing answer 1."));
    until_shown(tg, room.id, "Answer one.", BROWSING).await;
    let calls = super::controls::methods_since(tg, before);
    let edits = calls.iter().filter(|c| *c == "editmessagetext").count();
    assert!(
        edits < 10,
        "queued presses a newer one overtook show nothing: {calls:?}"
    );
    assert_eq!(tg.too_many_requests(), 0);
    harness.stop().await;
    let replies = stored_replies(&harness.db()).await;
    assert_eq!(
        replies[0].2, "Answer one.",
        "the history holds the answer shown"
    );
}

#[tokio::test]
async fn with_llm_n_three_one_request_gives_three_answers_to_browse() {
    let limits = crate::fake_telegram::FakeLimits::default();
    let mut harness = Harness::with_limits(limits, &[("LLM__N", "3")]).await;
    let (alice, room) = (User::new(1809, "Alice"), group(-1001809, None));
    let script =
        Script::reply("Choice zero.").others(&["Choice one, longer than the others.", "Two."]);
    harness.llm.push(script);
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot three ways");
    let shown = until_shown(&harness.tg, room.id, "Choice zero.", BROWSING).await;
    button(&shown, "1/3");
    assert_eq!(
        harness.llm_bodies()[0]["n"],
        3,
        "the request asks for three"
    );
    let said = harness
        .tg
        .press_answered(&room, &alice, shown.id, &button(&shown, "▶"))
        .await;
    assert_eq!(said, "Showing answer 2.");
    let text = "Choice one, longer than the others.";
    let second = until_shown(&harness.tg, room.id, text, BROWSING).await;
    assert_eq!(second.id, shown.id);
    button(&second, "2/3");
    assert_eq!(
        harness.llm.requests().len(),
        1,
        "one request gave all three"
    );
    harness.tg.user_writes(&room, &alice, "@parley_bot go on");
    harness.wait_for_requests(2).await;
    let next = messages(&harness, 1);
    assert_eq!(
        next[next.len() - 2]["content"],
        text,
        "the next turn goes on from it"
    );
    harness.stop().await;
    let kept = stored_alternatives(&harness.db()).await;
    let kept: Vec<&str> = kept.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        kept[..3],
        ["Choice zero.", text, "Two."],
        "the first reply's three answers"
    );
}

#[tokio::test]
async fn n_sets_a_groups_answers_per_message_for_admins_only() {
    let mut harness = Harness::new().await;
    let (alice, carol) = (User::new(1810, "Alice"), User::new(1811, "Carol"));
    let room = group(-1001810, None);
    harness.tg.make_admin(room.id, carol.id);
    harness.tg.user_writes(&room, &alice, "/n 2");
    let tg = &harness.tg;
    tg.wait_for(10, "the refusal", |tg| tg.messages(room.id).len() == 1)
        .await;
    assert!(tg.messages(room.id)[0].text.contains("Only admins"));
    harness.tg.user_writes(&room, &carol, "/n 2");
    let tg = &harness.tg;
    tg.wait_for(10, "the answer", |tg| tg.messages(room.id).len() == 2)
        .await;
    assert!(
        tg.messages(room.id)[1].text.contains("2 answer"),
        "{:?}",
        tg.messages(room.id)[1].text
    );
    harness
        .llm
        .push(Script::reply("One way.").others(&["Another way."]));
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot two ways");
    let shown = until_shown(&harness.tg, room.id, "One way.", BROWSING).await;
    button(&shown, "1/2");
    assert_eq!(harness.llm_bodies()[0]["n"], 2);
    harness.stop().await;
}

#[tokio::test]
async fn continue_after_browsing_goes_on_with_the_answer_shown_and_keeps_it_whole_in_the_set() {
    let mut harness = Harness::new().await;
    let (alice, room) = (User::new(1810, "Alice"), group(-1001810, None));
    harness
        .llm
        .push(Script::reply("First, cut").finish_reason("length"));
    harness
        .tg
        .user_writes(&room, &alice, "@parley_bot a long one");
    let tg = &harness.tg;
    let first = until_shown(tg, room.id, "First, cut", &["regen:", "cont:"]).await;
    harness.llm.push(Script::reply("Second."));
    press_until_taken(tg, &room, &alice, first.id, &regenerate(&first)).await;
    let second = until_shown(tg, room.id, "Second.", BROWSING).await;
    // Back to the cut answer: it carries Continue again.
    press_until_taken(tg, &room, &alice, second.id, &button(&second, "◀")).await;
    let cut_kinds = ["alt:", "alt:", "alt:", "regen:", "cont:"];
    let cut = until_shown(tg, room.id, "First, cut", &cut_kinds).await;
    harness.llm.push(Script::reply(" and the end."));
    let go_on = button_data(&cut)
        .into_iter()
        .find(|d| d.starts_with("cont:"));
    press_until_taken(tg, &room, &alice, cut.id, &go_on.unwrap()).await;
    // The continuation's message carries the set's controls: still answer 1 of 2.
    let end = until_shown(tg, room.id, "and the end.", BROWSING).await;
    assert_eq!(tg.messages(room.id).len(), 2);
    assert!(button(&end, "1/2").starts_with("alt:"));
    // ▶ and ◀ again: the continued answer comes back whole.
    press_until_taken(tg, &room, &alice, end.id, &button(&end, "▶")).await;
    let second = until_shown(tg, room.id, "Second.", BROWSING).await;
    assert_eq!(
        tg.messages(room.id).len(),
        1,
        "the continuation's message went"
    );
    press_until_taken(tg, &room, &alice, second.id, &button(&second, "◀")).await;
    until_shown(tg, room.id, "First, cut and the end.", BROWSING).await;
    assert_eq!(harness.llm.requests().len(), 3);
    assert_eq!(harness.tg.too_many_requests(), 0);
    harness.stop().await;
    let set = stored_alternatives(&harness.db()).await;
    let set: Vec<String> = set.into_iter().map(|(_, content)| content).collect();
    assert_eq!(set, ["First, cut and the end.", "Second."]);
}
