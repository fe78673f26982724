//! Two instances in webhook mode behind a round-robin proxy: Telegram's updates reach both, each
//! chat is answered by one instance at a time, every message once and in order.

use std::time::Duration;

use super::{Cluster, GRACE, echoes, everyone_writes, shown};
use crate::fake_telegram::{FakeTelegram, User};
use crate::proxy::RoundRobin;

#[tokio::test]
async fn two_instances_behind_a_round_robin_proxy_answer_every_message_once_in_order() {
    behind_a_proxy(Cluster::new(10).await).await;
}

#[tokio::test]
async fn two_instances_on_postgres_behind_a_round_robin_proxy_answer_every_message_once() {
    if let Some(cluster) = Cluster::on_postgres(10).await {
        behind_a_proxy(cluster).await;
    }
}

async fn behind_a_proxy(cluster: Cluster) {
    let proxy = RoundRobin::start().await;
    let hook = [
        (
            "TELEGRAM__WEBHOOK_URL",
            format!("{}/telegram/webhook", proxy.url()),
        ),
        ("TELEGRAM__WEBHOOK_SECRET", "instances-Secret_1".to_string()),
    ];
    let a = cluster.start_with("a", &hook).await;
    proxy.add(a.http_address().expect("a listens"));
    let b = cluster.start_with("b", &hook).await;
    proxy.add(b.http_address().expect("b listens"));
    let tg = &cluster.tg;
    let users: Vec<User> = (0..6).map(|i| User::new(9600 + i, "Ann")).collect();
    for round in 0..4 {
        everyone_writes(tg, &users, round);
    }
    let all = |tg: &FakeTelegram| users.iter().all(|u| tg.messages(u.id).len() == 4);
    cluster
        .wait_for_chats(30, "four answers in every chat", all)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for user in &users {
        assert_eq!(shown(tg, user.id), echoes(user, 0..4), "chat {}", user.id);
    }
    assert_eq!(
        cluster.llm.requests().len(),
        24,
        "the model was asked once a message"
    );
    let received = cluster
        .texts("SELECT DISTINCT received_by FROM inbox ORDER BY received_by")
        .await;
    assert_eq!(received, ["a", "b"], "both instances took updates");
    let answered = cluster
        .texts("SELECT DISTINCT instance FROM messages WHERE role = 'assistant' ORDER BY instance")
        .await;
    assert!(!answered.is_empty(), "{answered:?}");
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    a.shutdown(GRACE).await;
    b.shutdown(GRACE).await;
}

/// Telegram counts about 30 messages a second over all of a bot's chats, whichever instance
/// sends them: two instances receiving updates side by side each pace by half of it, from their
/// start. A burst of new chats reaching both at once, before either has answered anything, gets
/// no 429 (each pacing by the whole budget, they send twice what the fake allows).
#[tokio::test]
async fn two_instances_answering_side_by_side_split_the_bot_wide_budget() {
    let cluster = Cluster::new(10).await;
    let proxy = RoundRobin::start().await;
    let hook = [
        (
            "TELEGRAM__WEBHOOK_URL",
            format!("{}/telegram/webhook", proxy.url()),
        ),
        ("TELEGRAM__WEBHOOK_SECRET", "instances-Secret_1".to_string()),
    ];
    let a = cluster.start_with("a", &hook).await;
    proxy.add(a.http_address().expect("a listens"));
    let b = cluster.start_with("b", &hook).await;
    proxy.add(b.http_address().expect("b listens"));
    let tg = &cluster.tg;
    let answered = |users: &[User]| {
        let users = users.to_vec();
        move |tg: &FakeTelegram| users.iter().all(|u| tg.messages(u.id).len() == 1)
    };
    let holders = "SELECT CAST(COUNT(DISTINCT instance) AS TEXT) FROM chat_leases \
         WHERE scope != 'telegram:poll' AND released_at IS NULL";
    assert_eq!(
        cluster.texts(holders).await,
        ["2"],
        "each holds its receiving role"
    );
    // a counts again within a quarter of a second of b's start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let burst: Vec<User> = (0..60).map(|i| User::new(9800 + i, "Bo")).collect();
    everyone_writes(tg, &burst, 0);
    cluster
        .wait_for_chats(60, "an answer in every chat of the burst", answered(&burst))
        .await;
    for user in &burst {
        assert_eq!(shown(tg, user.id), echoes(user, 0..1), "chat {}", user.id);
    }
    let received = cluster
        .texts("SELECT DISTINCT received_by FROM inbox ORDER BY received_by")
        .await;
    assert_eq!(received, ["a", "b"], "both instances took updates");
    assert_eq!(tg.too_many_requests(), 0, "no 429 from the Bot API");
    a.shutdown(GRACE).await;
    b.shutdown(GRACE).await;
}
