//! Scenarios: Discord's limits and failures during a reply.

use std::time::Duration;

use super::{Bot, CHANNEL, GUILD, USER};
use crate::fake_discord::{FakeDiscord, UserMessage};
use crate::fake_llm::Script;

#[tokio::test]
async fn two_replies_in_one_channel_land_their_final_texts_through_429s() {
    // The fake allows 2 writes per second; the bot believes 5 per 500 ms and meets 429s.
    let strict = FakeDiscord::with_bucket(2, Duration::from_secs(1)).await;
    let bot = Bot::start_with(strict, &[]).await;
    let first = "The first answer, streamed in many small pieces.";
    let second = "The second answer, also streamed in many small pieces.";
    for text in [first, second] {
        bot.llm
            .push(Script::reply(text).delay(Duration::from_millis(20)));
    }
    let d = &bot.discord;
    d.user_message(UserMessage::mention(GUILD, CHANNEL, USER, "one"));
    d.user_message(UserMessage::mention(GUILD, CHANNEL, "43", "two"));
    bot.until_texts(CHANNEL, &[first.to_string(), second.to_string()])
        .await;
    assert!(d.rate_limited() > 0, "the scenario met 429s");
    let calls = d.calls();
    for (i, call) in calls.iter().enumerate().filter(|(_, c)| c.status == 429) {
        // The next write in the channel waits at least the retry_after the 429 gave.
        let wait = call.retry_after.expect("a 429 carries retry_after");
        // The fake refuses only message writes, and the final text still landed after it.
        let later = calls[i + 1..].iter().find(|c| c.path.contains("/messages"));
        let Some(later) = later else {
            panic!("no write followed the 429 {call:?}");
        };
        assert!(later.at - call.at >= wait, "{call:?} then {later:?}");
    }
}

#[tokio::test]
async fn a_message_deleted_mid_stream_continues_in_a_new_message() {
    let bot = Bot::start().await;
    let text: String = (0..40).map(|i| format!("word{i} ")).collect();
    let text = text.trim_end().to_string();
    bot.llm.push(
        Script::reply(text.clone())
            .chunk_chars(6)
            .delay(Duration::from_millis(40)),
    );
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "go"));
    bot.until("the first message shows", |b| {
        !b.discord.texts(CHANNEL).is_empty()
    })
    .await;
    let first = bot.discord.bot_messages(CHANNEL)[0].id.clone();
    bot.discord.delete(&first);
    bot.until("the reply ends in a new message", |b| {
        b.discord
            .texts(CHANNEL)
            .last()
            .is_some_and(|t| t.ends_with("word39"))
    })
    .await;
    let live = bot.discord.bot_messages(CHANNEL);
    assert!(live.iter().all(|m| m.id != first));
    let gone = bot.discord.calls().into_iter().filter(|c| c.status == 404);
    assert!(gone.count() >= 1, "an edit found the message deleted");
}

#[tokio::test]
async fn missing_permissions_stop_the_reply_without_a_retry_loop() {
    let bot = Bot::start().await;
    bot.discord.forbid(CHANNEL);
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "hello"));
    bot.until("the send is refused", |b| {
        b.discord.calls().iter().any(|c| c.status == 403)
    })
    .await;
    bot.discord
        .user_message(UserMessage::dm("20", USER, "still there?"));
    bot.until_texts("20", &["echo: still there?".to_string()])
        .await;
    // Stopping waits for every reply to end: a retry loop would show here.
    let mut bot = bot;
    bot.stop().await;
    let refused = bot.discord.calls().into_iter().filter(|c| c.status == 403);
    assert_eq!(refused.count(), 1, "no retries after 50013");
}
