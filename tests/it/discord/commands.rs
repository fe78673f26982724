//! Scenarios: slash commands, their registration, permissions and `/ask`.

use std::time::Duration;

use parley::engine::ports::LengthUnit;
use parley::engine::split;
use serde_json::Value;

use super::{Bot, CHANNEL, GUILD, USER, echo, no_pings};
use crate::fake_discord::{FakeDiscord, SlashCommand, UserMessage};
use crate::fake_llm::Script;

/// Runs a slash command and waits for its (ephemeral) answer.
async fn run(bot: &Bot, command: SlashCommand) -> String {
    let token = bot.discord.slash_command(command);
    bot.until("the command is answered", |b| {
        b.discord
            .original(&token)
            .is_some_and(|m| !m.content.is_empty())
    })
    .await;
    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(callback["type"], 5, "deferred first");
    assert_eq!(
        callback["data"]["flags"], 64,
        "command answers are ephemeral"
    );
    let original = bot.discord.original(&token).unwrap();
    assert_eq!(original.allowed_mentions, Some(no_pings()));
    original.content
}

/// Mentions the bot in `channel` and waits for the echo.
async fn ask(bot: &Bot, channel: &str, text: &str) {
    let before = bot.discord.texts(channel).len();
    bot.discord
        .user_message(UserMessage::mention(GUILD, channel, USER, text));
    bot.until("the answer lands", |b| {
        b.discord
            .texts(channel)
            .get(before)
            .is_some_and(|t| t == &echo(text))
    })
    .await;
}

fn names(body: &Value) -> Vec<String> {
    let commands = body.as_array().unwrap().iter();
    commands
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn slash_commands_are_registered_globally_at_start() {
    let bot = Bot::start().await;
    bot.until("commands are registered", |b| {
        !b.discord
            .calls_to("PUT", "/applications/2000/commands")
            .is_empty()
    })
    .await;
    let put = &bot.discord.calls_to("PUT", "/applications/2000/commands")[0];
    assert_eq!(
        names(&put.body),
        [
            "model", "reset", "system", "usage", "help", "regen", "continue", "alt", "n", "ask"
        ]
    );
    let choices = put.body[0]["options"][0]["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4, "one choice per configured model");
    let identify = &bot.discord.identifies()[0];
    assert_eq!(identify["intents"], 1 | 1 << 9 | 1 << 12 | 1 << 15);
}

#[tokio::test]
async fn slash_commands_are_registered_per_guild_when_guild_ids_are_set() {
    let fake = FakeDiscord::with_bucket(5, Duration::from_millis(500)).await;
    let bot = Bot::start_with(fake, &[("PARLEY__DISCORD__GUILD_IDS", "555,556")]).await;
    bot.until("commands are registered in both guilds", |b| {
        b.discord
            .calls_to("PUT", "/applications/2000/guilds/")
            .len()
            == 2
    })
    .await;
    assert!(
        bot.discord
            .calls_to("PUT", "/applications/2000/commands")
            .is_empty()
    );
}

#[tokio::test]
async fn slash_model_switches_the_model_of_the_next_request() {
    let bot = Bot::start().await;
    let command = SlashCommand::guild(GUILD, CHANNEL, USER, "model").option("name", "grok-3");
    let answer = run(&bot, command.manager()).await;
    assert!(answer.contains("grok-3"), "{answer}");
    ask(&bot, CHANNEL, "which model?").await;
    assert_eq!(bot.last_request()["model"], "grok-3");
}

#[tokio::test]
async fn slash_reset_changes_the_conversation_header() {
    let bot = Bot::start().await;
    ask(&bot, CHANNEL, "before").await;
    run(&bot, SlashCommand::guild(GUILD, CHANNEL, USER, "reset")).await;
    ask(&bot, CHANNEL, "after").await;
    let headers = bot.headers();
    assert_ne!(headers[0], headers[1]);
    let messages = bot.last_request()["messages"].as_array().unwrap().clone();
    assert!(
        !Value::Array(messages).to_string().contains("before"),
        "history is gone"
    );
}

#[tokio::test]
async fn slash_system_from_a_member_without_manage_server_is_refused() {
    let bot = Bot::start().await;
    let set = SlashCommand::guild(GUILD, CHANNEL, USER, "system").option("prompt", "Be a pirate.");
    let answer = run(&bot, set.clone()).await;
    assert!(answer.contains("Only admins"), "{answer}");
    ask(&bot, CHANNEL, "hello").await;
    assert!(!bot.last_request().to_string().contains("pirate"));

    let admin = set.clone();
    let mut admin = admin;
    admin.user_id = "99".into();
    let listed = Bot::start_with(
        FakeDiscord::with_bucket(5, Duration::from_millis(500)).await,
        &[("PARLEY__ACCESS__ADMINS", "discord:99")],
    )
    .await;
    let answer = run(&listed, admin).await;
    assert!(answer.contains("set"), "a listed admin may: {answer}");
    ask(&listed, CHANNEL, "hello").await;
    assert!(listed.last_request().to_string().contains("Be a pirate."));
}

#[tokio::test]
async fn slash_ask_streams_the_answer_through_the_interaction() {
    let bot = Bot::start().await;
    let text = format!(
        "Long answer. {}",
        "Lorem ipsum dolor sit amet. ".repeat(100)
    );
    bot.llm.push(Script::reply(text.clone()).chunk_chars(100));
    let ask = SlashCommand::guild(GUILD, CHANNEL, USER, "ask").option("prompt", "tell me");
    let token = bot.discord.slash_command(ask);
    let pieces = split::split(&text, 2000, LengthUnit::Chars);
    let expected: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
    assert_eq!(expected.len(), 2);
    bot.until_texts(CHANNEL, &expected).await;

    let callback = bot.discord.interaction_callback(&token).unwrap();
    assert_eq!(callback["data"]["flags"], 0, "/ask answers in public");
    assert_eq!(bot.discord.original(&token).unwrap().content, expected[0]);
    let followups = bot
        .discord
        .calls_to("POST", &format!("/webhooks/2000/{token}"));
    assert_eq!(followups.iter().filter(|c| c.status == 200).count(), 1);
    let user = bot.last_request()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(user["content"].as_str().unwrap().contains("tell me"));
}

#[tokio::test]
async fn a_slash_command_during_a_reply_takes_its_place_in_the_channels_turn_order() {
    let bot = Bot::start().await;
    let answer: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let answer = answer.join(" ");
    bot.llm.push(
        Script::reply(answer.as_str())
            .chunk_chars(8)
            .delay(Duration::from_millis(60)),
    );
    bot.discord.user_message(UserMessage::mention(
        GUILD,
        CHANNEL,
        USER,
        "a long question",
    ));
    bot.until("the request is sent", |b| b.llm.requests().len() == 1)
        .await;
    let command = SlashCommand::guild(GUILD, CHANNEL, USER, "model").option("name", "grok-3");
    let token = bot.discord.slash_command(command.manager());
    bot.until("the interaction is acknowledged", |b| {
        b.discord.interaction_callback(&token).is_some()
    })
    .await;
    assert_eq!(bot.discord.interaction_callback(&token).unwrap()["type"], 5);
    assert!(
        bot.discord.texts(CHANNEL).last() != Some(&answer),
        "acknowledged at once, while the reply still streams"
    );
    bot.until("the command is answered", |b| {
        b.discord
            .original(&token)
            .is_some_and(|m| m.content.contains("grok-3"))
    })
    .await;
    let calls: Vec<_> = bot
        .discord
        .calls()
        .into_iter()
        .filter(|c| c.status < 300)
        .collect();
    let final_text = calls.iter().rposition(|c| {
        c.path.starts_with(&format!("/channels/{CHANNEL}/messages")) && c.body["content"] == answer
    });
    let switch = calls.iter().position(|c| {
        c.path.contains(&format!("/webhooks/2000/{token}/")) && c.body["content"] != Value::Null
    });
    assert!(
        final_text.is_some() && final_text < switch,
        "the reply's final text ({final_text:?}) lands before the switch's answer ({switch:?})"
    );
    assert_eq!(
        bot.llm.requests()[0].body["model"],
        "grok-4-fast-non-reasoning",
        "the reply in progress keeps its model"
    );
    ask(&bot, CHANNEL, "and now?").await;
    assert_eq!(bot.last_request()["model"], "grok-3");
}
