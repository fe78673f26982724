//! Discord among several instances: an instance talks to a channel only while it holds the
//! channel's lease; a message for a channel another live instance holds waits in the shared
//! inbox for that instance.

use std::time::Duration;

use super::{Bot, CHANNEL, GUILD, USER, echo};
use crate::fake_discord::{FakeDiscord, UserMessage};
use crate::support::db_url;

/// Instance `other`'s heartbeat.
const BEAT: &str = "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ('other', 0, \
     CAST(unixepoch('subsec') * 1000 AS INTEGER)) ON CONFLICT (id) DO UPDATE \
     SET heartbeat_at = excluded.heartbeat_at";

/// Keeps instance `other` alive in the database at `url` (beating once before it returns)
/// until the task is aborted.
async fn keep_alive(url: String) -> tokio::task::JoinHandle<()> {
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    sqlx::query(BEAT).execute(&pool).await.expect("beats");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sqlx::query(BEAT).execute(&pool).await.expect("beats");
        }
    })
}

#[tokio::test]
async fn a_channel_another_live_instance_holds_is_not_answered_here_until_that_instance_dies() {
    let discord = FakeDiscord::with_bucket(5, Duration::from_millis(500)).await;
    let coordinate = [
        ("PARLEY__INSTANCE__COORDINATE", "true"),
        ("PARLEY__INSTANCE__ID", "solo"),
        ("PARLEY__TELEGRAM__FAILOVER_SECS", "1"),
    ];
    let mut bot = Bot::start_with(discord, &coordinate).await;
    let url = db_url(&bot._dir.path().join("parley.db"));
    let other = keep_alive(url.clone()).await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    let scope = format!("discord:{CHANNEL}");
    sqlx::query("INSERT INTO chat_leases (scope, instance) VALUES (?1, 'other')")
        .bind(&scope)
        .execute(&pool)
        .await
        .expect("the other instance holds the channel");

    let ask = |text: &str| UserMessage::mention(GUILD, CHANNEL, USER, text);
    bot.discord.user_message(ask("first"));
    let kept = "SELECT received_by FROM inbox WHERE started_at IS NULL";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Vec<String> = sqlx::query_scalar(kept).fetch_all(&pool).await.unwrap();
        if waiting == ["solo"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{waiting:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three failover times: the other instance, alive, keeps the channel.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bot.discord.texts(CHANNEL).is_empty(), "nothing said here");
    assert!(bot.llm.requests().is_empty(), "the model was not asked");

    other.abort();
    bot.discord.user_message(ask("second"));
    let texts = [echo("first"), echo("second")];
    bot.until_texts(CHANNEL, &texts).await;
    let holder: String = sqlx::query_scalar("SELECT instance FROM chat_leases WHERE scope = ?1")
        .bind(&scope)
        .fetch_one(&pool)
        .await
        .expect("the lease");
    assert_eq!(
        holder, "solo",
        "the channel's lease passed once its holder died"
    );
    pool.close().await;
    bot.stop().await;
}
