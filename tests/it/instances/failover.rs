//! kill -9 of the instance that polls and streams: the other takes over.

use std::time::Duration;

use parley::store::INTERRUPTED;
use tokio::time::Instant;

use super::{Cluster, GRACE, shown, wait_until};
use crate::fake_llm::Script;
use crate::fake_telegram::{User, group};
use crate::support::{MARKER, slow_answer};

#[tokio::test]
async fn a_killed_instance_is_replaced_within_the_failover_time_its_reply_marked_and_its_queue_answered()
 {
    replaced_after_a_kill(Cluster::new(2).await).await;
}

#[tokio::test]
async fn on_postgres_a_killed_instance_is_replaced_its_reply_marked_and_its_queue_answered() {
    if let Some(cluster) = Cluster::on_postgres(2).await {
        replaced_after_a_kill(cluster).await;
    }
}

async fn replaced_after_a_kill(cluster: Cluster) {
    let failover = Duration::from_secs(2);
    cluster
        .llm
        .push(Script::reply(slow_answer()).delay(Duration::from_millis(100)));
    let mut a = cluster.spawn("a");
    cluster.wait_for_poller("a", 30).await;
    let b = cluster.start("b").await;
    let tg = &cluster.tg;
    let (bob, room) = (User::new(9301, "Bob"), group(-3001, None));
    tg.user_writes(&room, &bob, "@parley_bot first");
    let streaming = "SELECT content FROM messages WHERE role = 'assistant' \
         AND status = 'streaming' AND instance = 'a' AND content != '' AND platform_messages != '[]'";
    wait_until(20, "a streaming the first reply", || async {
        !cluster.texts(streaming).await.is_empty()
    })
    .await;
    tg.user_writes(&room, &bob, "@parley_bot second");
    let queued = "SELECT received_by FROM inbox WHERE started_at IS NULL";
    wait_until(20, "a keeping the second message, queued", || async {
        cluster.texts(queued).await == ["a"]
    })
    .await;

    let metrics = cluster.metrics("a").await;
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    assert_eq!(
        gauge("parley_instance_leases"),
        Some(2.0),
        "the poll lease and the group's"
    );
    assert!(gauge("parley_inbox_depth").is_some(), "{metrics}");

    a.start_kill().expect("kill -9");
    a.wait().await.expect("killed");
    let killed = Instant::now();
    cluster.wait_for_poller("b", 30).await;
    let took = killed.elapsed();
    eprintln!("b polls {took:?} after the kill (failover {failover:?})");
    assert!(
        took < failover + Duration::from_secs(5),
        "b took over polling in {took:?}"
    );
    let second = "echo: Bob: second";
    let what = "the interrupted marker and the queued answer";
    cluster
        .wait_for_chats(20, what, |tg| {
            let texts = shown(tg, -3001);
            texts.first().is_some_and(|t| t.ends_with(MARKER)) && texts.iter().any(|t| t == second)
        })
        .await;
    let replies = cluster
        .texts(
            "SELECT status || ' ' || COALESCE(failure_reason, '') || ' ' || COALESCE(instance, '-') \
             FROM messages WHERE role = 'assistant' ORDER BY id",
        )
        .await;
    assert_eq!(
        replies,
        [
            format!("partial {INTERRUPTED} a"),
            "complete  b".to_string()
        ]
    );
    tg.user_writes(&room, &bob, "@parley_bot third");
    tg.wait_for(20, "b answering a new message", |tg| {
        shown(tg, -3001).iter().any(|t| t == "echo: Bob: third")
    })
    .await;
    let texts = shown(tg, -3001);
    assert_eq!(texts.len(), 3, "each message answered once: {texts:?}");
    let streamed = texts[0].trim_end_matches(MARKER).trim_end();
    assert!(slow_answer().starts_with(streamed), "{}", texts[0]);
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    assert_eq!(
        cluster.poll_conflicts(),
        0,
        "never two instances polling at once"
    );
    b.shutdown(GRACE).await;
    let log = cluster.log("a");
    assert!(!log.contains("panicked"), "{log}");
}
