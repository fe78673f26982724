//! Reply controls through Discord: a Stop button (a message component) on the streaming reply,
//! pressed by the asker, a manager, or someone else (refused, ephemerally).

use std::time::Duration;

use super::{Bot, CHANNEL, GUILD, USER};
use crate::fake_discord::{Press, SlashCommand, UserMessage};
use crate::fake_llm::Script;
use crate::support::stored_replies;

/// An answer that takes about six seconds to stream.
fn long_answer() -> Script {
    let text: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    Script::reply(text.join(" "))
        .chunk_chars(6)
        .delay(Duration::from_millis(30))
}

/// Waits for the streaming reply's Stop button; the message id and the button's custom id.
async fn stop_button(bot: &Bot) -> (String, String) {
    bot.until("a Stop button on the streaming reply", |bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        messages
            .iter()
            .any(|m| m.button_ids().iter().any(|b| b.starts_with("stop:")))
    })
    .await;
    let messages = bot.discord.bot_messages(CHANNEL);
    let message = messages
        .iter()
        .find(|m| !m.button_ids().is_empty())
        .unwrap();
    let id = message
        .button_ids()
        .into_iter()
        .find(|b| b.starts_with("stop:"));
    (message.id.clone(), id.unwrap())
}

/// The calls since the `index`th, as (method, path), what the gateway fetch aside.
fn calls_since(bot: &Bot, index: usize) -> Vec<(String, String)> {
    let calls = bot.discord.calls().into_iter().skip(index);
    let calls = calls.filter(|c| c.path != "/gateway" && !c.path.ends_with("/typing"));
    calls.map(|c| (c.method, c.path)).collect()
}

/// How many of `calls` have `method` and a path ending with `end`.
fn count(calls: &[(String, String)], method: &str, end: &str) -> usize {
    let matching = calls
        .iter()
        .filter(|(m, p)| m == method && p.ends_with(end));
    matching.count()
}

fn press<'a>(message: &'a str, custom_id: &'a str, user: &'a str, manager: bool) -> Press<'a> {
    Press {
        message,
        custom_id,
        user_id: user,
        guild_id: Some(GUILD),
        manager,
    }
}

/// Waits until the reply shows the stop marker without buttons, the stream's connection
/// closed, and the row is stored as partial with reason `stopped`.
async fn assert_stopped(bot: &mut Bot) {
    bot.until("the stopped marker with Regenerate alone", |bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        let last = messages.iter().rfind(|m| m.flags & 64 == 0);
        let buttons = last.map(|m| m.button_ids()).unwrap_or_default();
        let regenerate_only = buttons.len() == 1 && buttons[0].starts_with("regen:");
        last.is_some_and(|m| m.content.ends_with("⏹ stopped")) && regenerate_only
    })
    .await;
    let messages = bot.discord.bot_messages(CHANNEL);
    let last = messages.iter().rfind(|m| m.flags & 64 == 0).unwrap();
    assert!(last.content.starts_with("w0 w1") && !last.content.contains("w299"));
    bot.until("the stream's connection closed", |bot| {
        bot.llm.streams_dropped() == 1
    })
    .await;
    bot.stop().await;
    let rows = stored_replies(&bot._dir.path().join("parley.db")).await;
    let (status, reason, _) = rows.last().cloned().expect("the reply row");
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("partial", Some("stopped"))
    );
}

#[tokio::test]
async fn the_asker_stops_a_streaming_reply_with_its_button() {
    let mut bot = Bot::start().await;
    bot.llm.push(long_answer());
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a long story"));
    let (message, custom_id) = stop_button(&bot).await;
    let before = bot.discord.calls().len();
    let token = bot.discord.press(press(&message, &custom_id, USER, false));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(
        callback["type"], 6,
        "acknowledged without a message: {callback}"
    );
    assert_stopped(&mut bot).await;
    assert_eq!(bot.discord.rate_limited(), 0);
    // What the stop cost: the press's callback and the final edit (a preview already granted
    // its slot may still go first).
    let calls = calls_since(&bot, before);
    let (callbacks, edits) = (
        count(&calls, "POST", "/callback"),
        count(&calls, "PATCH", ""),
    );
    assert_eq!(callbacks, 1, "{calls:?}");
    assert!(
        (1..=2).contains(&edits) && calls.len() == 1 + edits,
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_server_manager_may_stop_someone_elses_reply() {
    let mut bot = Bot::start().await;
    bot.llm.push(long_answer());
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a long story"));
    let (message, custom_id) = stop_button(&bot).await;
    let token = bot.discord.press(press(&message, &custom_id, "77", true));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    assert_stopped(&mut bot).await;
}

#[tokio::test]
async fn someone_else_pressing_stop_gets_an_ephemeral_answer_and_nothing_stops() {
    let mut bot = Bot::start().await;
    let text: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let answer = text.join(" ");
    let slow = Script::reply(answer.clone())
        .chunk_chars(6)
        .delay(Duration::from_millis(40));
    bot.llm.push(slow);
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a story"));
    let (message, custom_id) = stop_button(&bot).await;
    let token = bot.discord.press(press(&message, &custom_id, "77", false));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(callback["type"], 4, "{callback}");
    assert_eq!(callback["data"]["flags"], 64, "ephemeral: {callback}");
    let said = callback["data"]["content"].as_str().unwrap_or("");
    assert!(said.contains("Only the person who asked"), "{said}");
    bot.until("the whole answer, without its Stop button", |bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        let reply = messages.iter().find(|m| m.id == message);
        let stop = |m: &crate::fake_discord::Message| {
            m.button_ids().iter().any(|b| b.starts_with("stop:"))
        };
        reply.is_some_and(|m| m.content == answer && !stop(m))
    })
    .await;
    assert_eq!(bot.llm.streams_dropped(), 0);
    bot.stop().await;
    let rows = stored_replies(&bot._dir.path().join("parley.db")).await;
    assert_eq!(rows.last().map(|r| r.0.as_str()), Some("complete"));
}

/// Waits until the bot's last message in the channel that everyone sees (not an ephemeral
/// answer) reads `text` with buttons whose ids start with `kinds`; returns its id and button ids.
async fn until_shown(bot: &Bot, text: &str, kinds: &[&str]) -> (String, Vec<String>) {
    let matches = |m: &crate::fake_discord::Message| {
        let ids = m.button_ids();
        m.content.trim() == text
            && ids.len() == kinds.len()
            && ids.iter().zip(kinds).all(|(id, k)| id.starts_with(k))
    };
    let last_public = |bot: &Bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        messages.into_iter().rfind(|m| m.flags & 64 == 0)
    };
    bot.until(&format!("{text:?} with {kinds:?}"), |bot| {
        last_public(bot).is_some_and(|m| matches(&m))
    })
    .await;
    let last = last_public(bot).unwrap();
    (last.id.clone(), last.button_ids())
}

#[tokio::test]
async fn regenerate_shows_the_new_answer_in_place_from_the_same_request_bytes() {
    let mut bot = Bot::start().await;
    bot.llm.push(Script::reply("The first answer."));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a question"));
    let (first, ids) = until_shown(&bot, "The first answer.", &["regen:"]).await;
    bot.llm.push(Script::reply("A better answer."));
    let before = bot.discord.calls().len();
    let token = bot.discord.press(press(&first, &ids[0], USER, false));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    assert_eq!(bot.discord.interaction_callback(&token).unwrap()["type"], 6);
    let (shown, _) = until_shown(
        &bot,
        "A better answer.",
        &["alt:", "alt:", "alt:", "regen:"],
    )
    .await;
    assert_eq!(shown, first, "in place");
    // What it cost: the press's callback and the stream's edits of the same message, no post.
    let calls = calls_since(&bot, before);
    let edits = count(&calls, "PATCH", &format!("/messages/{first}"));
    assert_eq!(count(&calls, "POST", "/callback"), 1, "{calls:?}");
    assert!(edits >= 1 && calls.len() == 1 + edits, "{calls:?}");
    let requests = bot.llm.requests();
    assert_eq!(requests[1].raw, requests[0].raw, "the same request bytes");
    assert_eq!(bot.discord.rate_limited(), 0);
    bot.stop().await;
    let db = bot._dir.path().join("parley.db");
    let alternatives = crate::support::stored_alternatives(&db).await;
    let kept: Vec<String> = alternatives.into_iter().map(|(_, c)| c).collect();
    assert_eq!(kept, ["The first answer.", "A better answer."]);
}

#[tokio::test]
async fn continue_after_a_cut_goes_on_in_a_new_message() {
    let mut bot = Bot::start().await;
    bot.llm
        .push(Script::reply("The first half,").finish_reason("length"));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a long one"));
    let (cut, ids) = until_shown(&bot, "The first half,", &["regen:", "cont:"]).await;
    bot.llm.push(Script::reply(" and the second half."));
    let before = bot.discord.calls().len();
    let token = bot.discord.press(press(&cut, &ids[1], USER, false));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    let (next, _) = until_shown(&bot, "and the second half.", &["regen:"]).await;
    let messages = bot.discord.bot_messages(CHANNEL);
    assert_eq!(messages.len(), 2);
    assert!(
        messages[0].button_ids().is_empty(),
        "the cut message's buttons went"
    );
    // What it cost: the press's callback, one edit of the cut message (its buttons), one new
    // message, and the stream's edits of that message.
    let calls = calls_since(&bot, before);
    let (callbacks, posts) = (
        count(&calls, "POST", "/callback"),
        count(&calls, "POST", &format!("/channels/{CHANNEL}/messages")),
    );
    let cut_edits = count(&calls, "PATCH", &format!("/messages/{cut}"));
    let next_edits = count(&calls, "PATCH", &format!("/messages/{next}"));
    assert_eq!((callbacks, posts, cut_edits), (1, 1, 1), "{calls:?}");
    assert_eq!(calls.len(), 3 + next_edits, "{calls:?}");
    assert_eq!(bot.discord.rate_limited(), 0);
    bot.stop().await;
    let rows = stored_replies(&bot._dir.path().join("parley.db")).await;
    assert_eq!(rows[0].2, "The first half, and the second half.");
}

#[tokio::test]
async fn a_press_on_an_older_reply_gets_an_ephemeral_answer() {
    let bot = Bot::start().await;
    bot.llm.push(Script::reply("One."));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "first"));
    let (first, ids) = until_shown(&bot, "One.", &["regen:"]).await;
    bot.llm.push(Script::reply("Two."));
    let before = bot.discord.calls().len();
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "second"));
    until_shown(&bot, "Two.", &["regen:"]).await;
    bot.until("the older reply's buttons removed", |bot| {
        bot.discord
            .message(&first)
            .is_some_and(|m| m.button_ids().is_empty())
    })
    .await;
    let calls = calls_since(&bot, before);
    let older = count(&calls, "PATCH", &format!("/messages/{first}"));
    assert_eq!(
        older, 1,
        "one edit takes the older reply's buttons: {calls:?}"
    );
    let token = bot.discord.press(press(&first, &ids[0], USER, false));
    bot.until("the press answered", |bot| {
        bot.discord.interaction_callback(&token).is_some()
    })
    .await;
    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(callback["data"]["flags"], 64, "{callback}");
    let said = callback["data"]["content"].as_str().unwrap_or("");
    assert!(said.contains("no longer the last reply"), "{said}");
    assert_eq!(bot.llm.requests().len(), 2);
}

#[tokio::test]
async fn the_arrows_show_the_other_answer_in_place() {
    let mut bot = Bot::start().await;
    bot.llm.push(Script::reply("The first answer."));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a question"));
    let (first, ids) = until_shown(&bot, "The first answer.", &["regen:"]).await;
    bot.llm.push(Script::reply("A better answer."));
    bot.discord.press(press(&first, &ids[0], USER, false));
    let browsing = ["alt:", "alt:", "alt:", "regen:"];
    let (_, ids) = until_shown(&bot, "A better answer.", &browsing).await;
    let before = bot.discord.calls().len();
    let token = bot.discord.press(press(&first, &ids[0], USER, false));
    let (shown, _) = until_shown(&bot, "The first answer.", &browsing).await;
    assert_eq!(shown, first, "in place");
    assert_eq!(bot.discord.interaction_callback(&token).unwrap()["type"], 6);
    let calls = calls_since(&bot, before);
    let edits = count(&calls, "PATCH", &format!("/messages/{first}"));
    assert!(edits >= 1 && calls.len() == 1 + edits, "{calls:?}");
    assert_eq!(
        bot.llm.requests().len(),
        2,
        "browsing asks the model nothing"
    );
    bot.stop().await;
    let rows = stored_replies(&bot._dir.path().join("parley.db")).await;
    assert_eq!(rows[0].2, "The first answer.");
}

#[tokio::test]
async fn slash_regen_and_alt_change_the_last_reply_in_the_channel() {
    let bot = Bot::start().await;
    bot.llm.push(Script::reply("The first answer."));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "a question"));
    let (first, _) = until_shown(&bot, "The first answer.", &["regen:"]).await;
    bot.llm.push(Script::reply("A better answer."));
    let slash = |name: &str| SlashCommand::guild(GUILD, CHANNEL, USER, name);
    let token = bot.discord.slash_command(slash("regen"));
    let kinds = ["alt:", "alt:", "alt:", "regen:"];
    let (shown, _) = until_shown(&bot, "A better answer.", &kinds).await;
    assert_eq!(shown, first, "in place, in the channel");
    let said = bot.discord.original(&token).expect("acknowledged");
    assert_eq!(said.content, "Regenerating the last reply.");
    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(callback["data"]["flags"], 64, "privately");

    let token = bot
        .discord
        .slash_command(slash("alt").int_option("number", 1));
    let (shown, _) = until_shown(&bot, "The first answer.", &kinds).await;
    assert_eq!(shown, first);
    bot.until("/alt acknowledged", |bot| {
        bot.discord
            .original(&token)
            .is_some_and(|m| m.content == "Showing that answer of the last reply.")
    })
    .await;
    assert_eq!(
        bot.llm.requests().len(),
        2,
        "browsing asks the model nothing"
    );
    assert_eq!(bot.discord.rate_limited(), 0);
}
