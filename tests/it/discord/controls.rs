//! Reply controls through Discord: a Stop button (a message component) on the streaming reply,
//! pressed by the asker, a manager, or someone else (refused, ephemerally).

use std::time::Duration;

use super::{Bot, CHANNEL, GUILD, USER};
use crate::fake_discord::{Press, UserMessage};
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
    bot.until("the stopped marker without a button", |bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        let last = messages.iter().rfind(|m| m.flags & 64 == 0);
        last.is_some_and(|m| m.content.ends_with("⏹ stopped") && m.button_ids().is_empty())
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
    bot.until("the whole answer, without a button", |bot| {
        let messages = bot.discord.bot_messages(CHANNEL);
        let reply = messages.iter().find(|m| m.id == message);
        reply.is_some_and(|m| m.content == answer && m.button_ids().is_empty())
    })
    .await;
    assert_eq!(bot.llm.streams_dropped(), 0);
    bot.stop().await;
    let rows = stored_replies(&bot._dir.path().join("parley.db")).await;
    assert_eq!(rows.last().map(|r| r.0.as_str()), Some("complete"));
}
