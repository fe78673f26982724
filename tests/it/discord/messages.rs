//! Scenarios: which messages the bot answers, and how a reply streams into a channel.

use std::time::Duration;

use parley::engine::ports::LengthUnit;
use parley::engine::split;

use super::{Bot, CHANNEL, GUILD, USER, echo, no_pings};
use crate::fake_discord::{BOT_ID, FakeDiscord, UserMessage};
use crate::fake_llm::Script;

#[tokio::test]
async fn a_mention_in_a_channel_streams_the_answer_as_a_reply() {
    let bot = Bot::start().await;
    let answer = "Rust is a systems language with memory safety and no garbage collector.";
    let thinking = Script::reply(answer).thinking(&["hmm", "well"]);
    bot.llm.push(thinking.delay(Duration::from_millis(30)));
    let asked = UserMessage::mention(GUILD, CHANNEL, USER, "what is rust?").nick("Ann");
    let asked = bot.discord.user_message(asked);
    bot.until_texts(CHANNEL, &[answer.to_string()]).await;

    let sent = bot.discord.bot_messages(CHANNEL);
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));
    assert!(sent[0].edits >= 1, "the answer streamed through edits");
    let typing = bot
        .discord
        .calls_to("POST", &format!("/channels/{CHANNEL}/typing"));
    let first_post = bot
        .discord
        .calls_to("POST", &format!("/channels/{CHANNEL}/messages"));
    assert!(!typing.is_empty(), "typing shows while the model thinks");
    assert!(typing[0].at <= first_post[0].at);
    let request = bot.last_request();
    let prompt = request["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    let prompt = prompt.as_str().unwrap();
    assert!(
        prompt.contains("what is rust?") && prompt.contains("Ann"),
        "{prompt}"
    );
    assert!(
        !prompt.contains(BOT_ID),
        "the mention is stripped: {prompt}"
    );
    assert_eq!(bot.discord.rate_limited(), 0);
}

#[tokio::test]
async fn a_dm_is_answered_without_a_mention() {
    let bot = Bot::start().await;
    bot.discord
        .user_message(UserMessage::dm("20", USER, "hello there"));
    bot.until_texts("20", &["echo: hello there".to_string()])
        .await;
    assert_eq!(bot.llm.requests().len(), 1);
}

#[tokio::test]
async fn unaddressed_and_bot_messages_are_ignored() {
    let bot = Bot::start().await;
    let d = &bot.discord;
    d.user_message(UserMessage::guild(GUILD, CHANNEL, USER, "just chatting"));
    d.user_message(UserMessage::mention(GUILD, CHANNEL, "43", "hi from a bot").by_a_bot());
    // The channel's turns run in order: a turn for either message above would be answered
    // before this one.
    d.user_message(UserMessage::mention(GUILD, CHANNEL, USER, "flush"));
    bot.until("the flush is answered", |b| {
        b.discord.texts(CHANNEL).contains(&echo("flush"))
    })
    .await;
    assert_eq!(bot.discord.texts(CHANNEL), [echo("flush")]);
    assert_eq!(
        bot.llm.requests().len(),
        1,
        "only the mention reached the model"
    );
}

#[tokio::test]
async fn a_reply_to_the_bots_message_is_answered() {
    let bot = Bot::start().await;
    let d = &bot.discord;
    d.user_message(UserMessage::mention(GUILD, CHANNEL, USER, "first"));
    bot.until_texts(CHANNEL, &[echo("first")]).await;
    let mine = d.bot_messages(CHANNEL)[0].id.clone();
    d.user_message(UserMessage::guild(GUILD, CHANNEL, USER, "second").replying_to(&mine));
    let texts = [echo("first"), echo("second")];
    bot.until_texts(CHANNEL, &texts).await;
}

#[tokio::test]
async fn a_thread_is_its_own_conversation() {
    let bot = Bot::start().await;
    let d = &bot.discord;
    d.user_message(UserMessage::mention(GUILD, CHANNEL, USER, "in the channel"));
    bot.until_texts(CHANNEL, &[echo("in the channel")]).await;
    d.user_message(UserMessage::mention(GUILD, "11", USER, "in a thread"));
    bot.until_texts("11", &[echo("in a thread")]).await;
    d.user_message(UserMessage::mention(GUILD, CHANNEL, USER, "again"));
    bot.until("the channel's second answer lands", |b| {
        b.discord.texts(CHANNEL).len() == 2
    })
    .await;
    let headers = bot.headers();
    assert_eq!(headers.len(), 3);
    assert_ne!(
        headers[0], headers[1],
        "the thread has its own conversation"
    );
    assert_eq!(headers[0], headers[2], "the channel keeps its conversation");
}

#[tokio::test]
async fn a_long_reply_with_code_blocks_continues_in_several_messages() {
    let bot = Bot::start().await;
    let code: String = (0..120)
        .map(|i| format!("let x{i} = {i} * 2; // step\n"))
        .collect();
    let text = format!(
        "Here is the code:\n\n```rust\n{code}```\n\nAnd more prose. {}",
        "All done. ".repeat(150)
    );
    bot.llm.push(Script::reply(text.clone()).chunk_chars(200));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "long please"));
    let pieces = split::split(&text, 2000, LengthUnit::Chars);
    assert!(pieces.len() >= 3, "the text needs several messages");
    let expected: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
    bot.until_texts(CHANNEL, &expected).await;

    assert_eq!(
        split::join(&pieces),
        text,
        "the messages reassemble the answer"
    );
    for shown in bot.discord.texts(CHANNEL) {
        assert!(shown.chars().count() <= 2000);
        assert_eq!(
            shown.matches("```").count() % 2,
            0,
            "fences balanced: {shown}"
        );
    }
    let refused = bot.discord.calls().into_iter().filter(|c| c.status == 400);
    assert_eq!(refused.count(), 0, "nothing over the limit was sent");
}

#[tokio::test]
async fn model_output_with_mentions_pings_nobody() {
    let bot = Bot::start().await;
    let answer = "@everyone look, <@123> and <@&456> and @here!";
    bot.llm
        .push(Script::reply(answer).delay(Duration::from_millis(10)));
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "ping them"));
    bot.until_texts(CHANNEL, &[answer.to_string()]).await;
    let writes: Vec<_> = (bot.discord.calls().into_iter())
        .filter(|c| c.path.ends_with("/messages") || c.path.contains("/messages/"))
        .collect();
    assert!(writes.len() >= 2, "a send and edits");
    for call in writes {
        assert_eq!(call.body["allowed_mentions"], no_pings(), "{call:?}");
    }
}

#[tokio::test]
async fn a_mention_alone_gets_a_short_hint_and_asks_the_model_nothing() {
    let bot = Bot::start().await;
    let asked = bot
        .discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, ""));
    let hint = "Ask me something: mention me with your question, or use /ask.";
    bot.until_texts(CHANNEL, &[hint.to_string()]).await;
    let sent = bot.discord.bot_messages(CHANNEL);
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));
    assert!(bot.llm.requests().is_empty());
}

#[tokio::test]
async fn replies_still_land_after_discord_closed_the_bots_idle_connections() {
    let idle = Duration::from_millis(200);
    let fake = FakeDiscord::with_bucket_closing_idle(5, Duration::from_millis(500), idle).await;
    let bot = Bot::start_with(fake, &[]).await;
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "first"));
    bot.until_texts(CHANNEL, &[echo("first")]).await;
    tokio::time::sleep(idle * 4).await;
    bot.discord
        .user_message(UserMessage::mention(GUILD, CHANNEL, USER, "second"));
    bot.until_texts(CHANNEL, &[echo("first"), echo("second")])
        .await;
    assert_eq!(bot.discord.rate_limited(), 0);
}
