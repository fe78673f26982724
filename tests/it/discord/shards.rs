//! Shard ranges: two bots on one token, each running one shard of two (`discord.shards` "0" and
//! "1" of `discord.shard_count` 2), as two instances would. The fake gateway sends each guild's
//! events only to its shard and DMs only to shard 0, as Discord does. And a process whose shards
//! would start more sessions than Discord allows today waits rather than have the token reset.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parley::app::App;
use parley::health::ComponentReport;

use super::{USER, echo};
use crate::fake_discord::{FAKE_TOKEN, FakeDiscord, UserMessage};
use crate::fake_llm::FakeLlm;
use crate::support::{app_config, app_env, stored_replies};

/// A guild on shard 0 of 2, and one on shard 1 (`(id >> 22) % 2`).
const GUILD_0: &str = "1";
const GUILD_1: &str = "4194304";

#[tokio::test]
async fn two_shard_ranges_each_answer_their_own_guilds_once() {
    let (discord, llm) = (
        FakeDiscord::with_bucket(5, Duration::from_millis(500)).await,
        FakeLlm::start().await,
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut apps = Vec::new();
    for (shard, dir) in ["0", "1"].into_iter().zip(&dirs) {
        let mut env: HashMap<String, String> = app_env(&llm, &dir.path().join("parley.db"));
        for (key, value) in [
            ("TOKEN", FAKE_TOKEN.to_string()),
            ("PROXY_URL", discord.proxy_url()),
            ("EDIT_INTERVAL_MS", "50".into()),
            ("BUCKET_SIZE", "5".into()),
            ("BUCKET_WINDOW_MS", "500".into()),
            ("SHARDS", shard.into()),
            ("SHARD_COUNT", "2".into()),
        ] {
            env.insert(format!("PARLEY__DISCORD__{key}"), value);
        }
        apps.push(App::start(app_config(&env)).await.expect("starts"));
    }
    discord.wait_ready(2).await;
    // Two processes that do not coordinate identify at once: Discord refuses one with op 9 and
    // serenity identifies it again 5 s later. (Coordinating instances take turns: see
    // `instances::discord`.)
    let mut shards: Vec<u64> = discord.session_starts().iter().map(|s| s.0).collect();
    shards.sort();
    assert_eq!(shards, [0, 1]);
    let identifies = discord.identifies();
    assert_eq!(
        identifies.len(),
        2 + discord.invalid_sessions(),
        "{identifies:?}"
    );
    for d in identifies {
        assert_eq!(d["shard"][1], 2, "{d}");
    }
    let messages = [
        (
            UserMessage::mention(GUILD_0, "10", USER, "to shard zero"),
            echo("to shard zero"),
        ),
        (
            UserMessage::mention(GUILD_1, "20", USER, "to shard one"),
            echo("to shard one"),
        ),
        (
            UserMessage::dm("30", USER, "a DM"),
            "echo: a DM".to_string(),
        ),
    ];
    for (message, _) in &messages {
        discord.user_message(message.clone());
    }
    for (message, answer) in &messages {
        let channel = &message.channel_id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while discord.texts(channel) != [answer.clone()] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{channel}: {:?}",
                discord.texts(channel)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(llm.requests().len(), 3, "every message answered once");
    let replies = |i: usize| {
        let db = dirs[i].path().join("parley.db");
        async move {
            let rows = stored_replies(&db).await;
            let mut texts: Vec<String> = rows.into_iter().map(|r| r.2).collect();
            texts.sort();
            texts
        }
    };
    assert_eq!(
        replies(0).await,
        ["echo: a DM".to_string(), echo("to shard zero")]
    );
    assert_eq!(replies(1).await, [echo("to shard one")]);
    for (i, app) in apps.iter().enumerate() {
        let own = format!("discord.shard.{i}");
        let other = format!("discord.shard.{}", 1 - i);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        // The shard's component and the adapter's beat one after the other in one check: wait
        // for both (a shard refused at first was failing until its second IDENTIFY).
        let healthy = |report: &BTreeMap<String, ComponentReport>| {
            [own.as_str(), "discord"]
                .iter()
                .all(|name| report.get(*name).is_some_and(|c| c.is_ok()))
        };
        while !healthy(&app.health().report()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{own} never healthy: {:?}",
                app.health().report()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let report = app.health().report();
        assert!(!report.contains_key(&other), "{report:?}");
    }
    for app in apps {
        app.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn shards_wait_for_the_session_start_limit_rather_than_get_the_token_reset() {
    let (discord, llm) = (FakeDiscord::start().await, FakeLlm::start().await);
    // One session start left today, and a process of two shards.
    discord.limit_sessions(1);
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = app_env(&llm, &dir.path().join("parley.db"));
    for (key, value) in [
        ("TOKEN", FAKE_TOKEN.to_string()),
        ("PROXY_URL", discord.proxy_url()),
        ("SHARD_COUNT", "2".into()),
    ] {
        env.insert(format!("PARLEY__DISCORD__{key}"), value);
    }
    let app = App::start(app_config(&env)).await.expect("starts");
    // The limit is read at start (warnings) and again just before the shards would start.
    let asked = || discord.calls_to("GET", "/gateway/bot").len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while asked() < 2 && discord.identifies().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            discord.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // serenity would identify within milliseconds of being started.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        discord.identifies().is_empty(),
        "no session started: {:?}",
        discord.identifies()
    );
    assert!(!discord.token_reset(), "the token still works");
    app.shutdown(Duration::from_secs(5)).await;
}
