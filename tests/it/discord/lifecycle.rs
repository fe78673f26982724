//! Scenarios: start-up checks and restarts.

use std::time::Duration;

use super::{Bot, CHANNEL, GUILD, USER, echo};
use crate::fake_discord::{FakeDiscord, UserMessage};

#[tokio::test]
async fn a_restart_keeps_the_conversation_header_and_its_history() {
    let mut bot = Bot::start().await;
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "remember 7"));
    bot.until_texts(CHANNEL, &[echo("remember 7")]).await;
    bot.stop().await;
    bot.launch().await.expect("the adapter starts again");
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "what number?"));
    bot.until("the second answer lands", |b| {
        b.discord.texts(CHANNEL).len() == 2
    })
    .await;
    let headers = bot.headers();
    assert_eq!(headers.len(), 2);
    assert_eq!(
        headers[0], headers[1],
        "same conversation after the restart"
    );
    let request = bot.last_request().to_string();
    assert!(request.contains("remember 7") && request.contains(&echo("remember 7")));
}

#[tokio::test]
async fn the_bot_keeps_answering_after_the_gateway_drops_the_session() {
    let bot = Bot::start().await;
    bot.discord.close_sessions();
    bot.discord.wait_ready(2).await;
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "still here?"));
    bot.until_texts(CHANNEL, &[echo("still here?")]).await;
}

#[tokio::test]
async fn a_bad_token_stops_start_up_with_a_line_naming_the_key() {
    let fake = FakeDiscord::with_bucket(5, Duration::from_millis(500)).await;
    let mut bot = Bot::new(fake, &[("PARLEY__DISCORD__TOKEN", "wrong-token")]).await;
    let error = bot
        .launch()
        .await
        .expect_err("a refused token fails start-up");
    let line = format!("{error:#}");
    assert!(line.contains("discord.token"), "{line}");
    assert!(
        !line.contains("wrong-token"),
        "the token stays secret: {line}"
    );
    assert!(bot.discord.identifies().is_empty(), "no gateway connection");
}
