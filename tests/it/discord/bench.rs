//! The benchmark, ignored by default (it streams in real time, about 15 s per reply):
//! `cargo test --test it discord::bench -- --ignored --nocapture --test-threads 2`.

use std::time::{Duration, Instant};

use super::{Bot, CHANNEL, GUILD};
use crate::fake_discord::{FakeDiscord, UserMessage};
use crate::fake_llm::Script;

/// A 3,000-character reply.
fn reply() -> String {
    let text: String = (0..600).map(|i| format!("w{i:04} ")).collect();
    text[..3000].to_string()
}

/// Streams `count` replies of 3,000 characters at 50 tokens/s (4 characters a token) into one
/// channel with Discord's real pacing and bucket, and prints the REST calls and 429s.
async fn run(count: usize) {
    let real = FakeDiscord::start().await;
    let pacing = [
        ("PARLEY__DISCORD__EDIT_INTERVAL_MS", "1000"),
        ("PARLEY__DISCORD__BUCKET_SIZE", "5"),
        ("PARLEY__DISCORD__BUCKET_WINDOW_MS", "5000"),
    ];
    let bot = Bot::start_with(real, &pacing).await;
    let text = reply();
    for _ in 0..count {
        let script = Script::reply(text.clone()).chunk_chars(4);
        bot.llm.push(script.delay(Duration::from_millis(20)));
    }
    let start = Instant::now();
    for user in 0..count {
        let author = (100 + user).to_string();
        bot.discord
            .user_message(UserMessage::mention(GUILD, CHANNEL, &author, "go"));
    }
    let done = |b: &Bot| b.discord.texts(CHANNEL).concat().len() == count * text.len();
    let deadline = Instant::now() + Duration::from_secs(60 * count as u64);
    while !done(&bot) {
        assert!(Instant::now() < deadline, "the replies land");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = bot.discord.calls();
    let writes = calls
        .iter()
        .filter(|c| c.path.contains("/messages"))
        .count();
    let typing = calls.iter().filter(|c| c.path.ends_with("/typing")).count();
    println!(
        "{count} reply(ies) of 3000 chars at 50 tok/s in one channel: {writes} message creates/edits, \
         {typing} typing calls, {} 429s, {:.1} s until every final text landed",
        bot.discord.rate_limited(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(bot.discord.rate_limited(), 0, "target: no 429s");
}

#[tokio::test]
#[ignore = "benchmark: real-time pacing, about 15 s"]
async fn bench_one_reply_of_3000_characters() {
    run(1).await;
}

#[tokio::test]
#[ignore = "benchmark: real-time pacing, about 80 s"]
async fn bench_five_replies_of_3000_characters_in_one_channel() {
    run(5).await;
}
