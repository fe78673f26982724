//! kill -9 of an instance answering many chats, with their next messages queued and more
//! arriving while it is dead: the survivor marks every reply the dead one left streaming before
//! it answers the chat's next message, and answers every message once, its own chats' too.
//!
//! Two instances in webhook mode behind a round-robin proxy, on Telegram's real budget. Instance
//! a (a process of its own) streams in private chats (drafts) and thinks in groups (nothing
//! shown yet); each chat's second message waits for it. a is killed; the group chatter that
//! comes meanwhile (not addressed to the bot) and b's own busy chats fill the inbox past one
//! read of the pump. Then a counts as dead and b takes its chats over. What each part of the
//! takeover guards against:
//! - the sweep at takeover: without it the markers come with b's heartbeat, up to a third of
//!   the failover time later, after the answers;
//! - waiting for the markers: the marker of a draft (a new message, as urgent as a final text)
//!   queues with 47 others for the bot-wide budget, and the chat's answer, more urgent, would
//!   overtake it;
//! - the pump judging what it handed on the whole read: the read is cut at 256 events, all of
//!   the dead instance's chats, paused; judged on the unpaused rest, b forgets that it handed its
//!   own chats' queued messages and hands them again (answered twice);
//! - a marker sent on its own being as urgent as a first text: the groups' markers come last
//!   in the sweep, and as final texts the answers would overtake them. Only while a chat does
//!   not wait for its markers, though: with that wait the marker's urgency no longer decides the
//!   order in its chat (unless the wait gives up, after 30 s).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cluster, GRACE, shown, wait_until};
use crate::fake_llm::Script;
use crate::fake_telegram::{ChatRef, FakeTelegram, User, group, private};
use crate::proxy::RoundRobin;
use crate::support::log::http_address;
use crate::support::{MARKER, slow_answer};

/// The failover time: long enough that a does not count as dead before the test says so (see
/// [`a_counts_as_dead`]).
const FAILOVER_SECS: u64 = 20;

/// a's private chats (a reply streaming into a draft) and groups (a reply still thinking).
const PRIVATE: i64 = 36;
const GROUPS: i64 = 12;
/// a's private chats are started this many at a time.
const BATCH: usize = 12;
/// Messages not addressed to the bot in each of a's groups while a is dead: with the second
/// messages, more than one read of the inbox (256).
const CHATTER: usize = 22;
/// b's own chats, each with a long reply streaming and `QUEUED` messages waiting behind it.
const OWN: i64 = 4;
const QUEUED: usize = 3;

/// b's answer in its own chats: about 19 s, until well after the takeover.
fn own_answer() -> String {
    (0..150).map(|i| format!("b{i:03} ")).collect()
}

#[tokio::test]
async fn a_killed_busy_instance_has_every_reply_marked_before_the_next_answer_and_each_message_answered_once()
 {
    killed_while_busy(Cluster::new(FAILOVER_SECS).await).await;
}

#[tokio::test]
async fn on_postgres_a_killed_busy_instance_has_every_reply_marked_first_and_each_message_answered_once()
 {
    if let Some(cluster) = Cluster::on_postgres(FAILOVER_SECS).await {
        killed_while_busy(cluster).await;
    }
}

async fn killed_while_busy(cluster: Cluster) {
    let started = tokio::time::Instant::now();
    let proxy = RoundRobin::start().await;
    let hook = [
        (
            "TELEGRAM__WEBHOOK_URL",
            format!("{}/telegram/webhook", proxy.url()),
        ),
        ("TELEGRAM__WEBHOOK_SECRET", "instances-Secret_1".to_string()),
    ];
    let mut a = cluster.spawn_with("a", &hook);
    let at_a = cluster.listening("a").await;
    let b = cluster.start_with("b", &hook).await;
    let tg = &cluster.tg;
    let llm = &cluster.llm;

    // a takes its chats: only a behind the proxy.
    proxy.add(at_a);
    let bob = User::new(9001, "Bob");
    let groups: Vec<ChatRef> = (0..GROUPS).map(|i| group(-4000 - i, None)).collect();
    let people: Vec<User> = (0..PRIVATE).map(|i| User::new(9100 + i, "Ann")).collect();
    // In batches, so that a's first drafts do not go out in one burst of the whole budget.
    let drafts = "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE role = 'assistant' \
         AND status = 'streaming' AND instance = 'a' AND platform_messages != '[]'";
    for (batch, some) in people.chunks(BATCH).enumerate() {
        for ann in some {
            llm.push(Script::reply(slow_answer()).delay(Duration::from_millis(100)));
            tg.user_writes(&private(ann), ann, "first");
        }
        let shown = (batch * BATCH + some.len()).to_string();
        wait_until(60, "a streaming a draft in the batch's chats", || async {
            cluster.texts(drafts).await == [shown.clone()]
        })
        .await;
    }
    // The groups last: their markers are the last of the takeover's sweep, behind the drafts'.
    for _ in &groups {
        // Thinking for a minute: nothing of the reply shows before the kill.
        let thinking = Script::reply("never shown")
            .empty_deltas(600)
            .delay(Duration::from_millis(100));
        llm.push(thinking);
    }
    for room in &groups {
        tg.user_writes(room, &bob, "@parley_bot first");
    }
    wait_until(60, "a asking the model in every group", || async {
        llm.requests().len() == people.len() + groups.len()
    })
    .await;
    // The text so far is saved every 3 s: the marker keeps it.
    let saved = "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE role = 'assistant' \
         AND status = 'streaming' AND instance = 'a' AND content != ''";
    wait_until(60, "a's drafts' text saved", || async {
        cluster.texts(saved).await == [PRIVATE.to_string()]
    })
    .await;

    // Each chat's second message, through either instance, waits for a.
    proxy.add(b.http_address().expect("b listens"));
    for room in &groups {
        tg.user_writes(room, &bob, "@parley_bot second");
    }
    for ann in &people {
        tg.user_writes(&private(ann), ann, "second");
    }
    let waiting = "SELECT CAST(COUNT(*) AS TEXT) FROM inbox WHERE started_at IS NULL";
    let count = |n: usize| {
        let cluster = &cluster;
        move || async move { cluster.texts(waiting).await == [n.to_string()] }
    };
    let seconds = groups.len() + people.len();
    wait_until(60, "the second messages kept", count(seconds)).await;

    a.start_kill().expect("kill -9");
    a.wait().await.expect("killed");
    proxy.remove(at_a);
    let killed = started.elapsed();

    // While a is dead (not yet counted so), the groups chat on; b keeps it all for a's chats.
    let carol = User::new(9002, "Carol");
    for i in 0..CHATTER {
        for room in &groups {
            tg.user_writes(room, &carol, &format!("chatter {i}"));
        }
    }
    let chatter = seconds + groups.len() * CHATTER;
    wait_until(60, "the chatter kept", count(chatter)).await;
    // b's own chats: a long reply each, and messages queued behind it.
    let own: Vec<User> = (0..OWN).map(|i| User::new(9300 + i, "Ola")).collect();
    for _ in &own {
        llm.push(Script::reply(own_answer()).delay(Duration::from_millis(100)));
    }
    for user in &own {
        tg.user_writes(&private(user), user, "long");
    }
    let asked = groups.len() + people.len() + own.len();
    wait_until(60, "b asking the model in its own chats", || async {
        llm.requests().len() == asked
    })
    .await;
    for q in 0..QUEUED {
        for user in &own {
            tg.user_writes(&private(user), user, &format!("queued {q}"));
        }
    }
    wait_until(
        60,
        "b's queued messages kept",
        count(chatter + own.len() * QUEUED),
    )
    .await;
    // Not noticed sooner than a real failover could (two thirds of the failover time after the
    // kill at least): a's last calls in its chats have aged past Telegram's one a second.
    let since_kill = started.elapsed().saturating_sub(killed);
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(since_kill)).await;
    a_counts_as_dead(&cluster).await;
    let takeover = started.elapsed();

    let second = |room: &ChatRef| match room.kind {
        "private" => "echo: second".to_string(),
        _ => "echo: Bob: second".to_string(),
    };
    let a_chats: Vec<ChatRef> = groups
        .iter()
        .cloned()
        .chain(people.iter().map(private))
        .collect();
    let all_answered = |tg: &FakeTelegram| {
        let a_done = a_chats.iter().all(|room| {
            let texts = shown(tg, room.id);
            texts.iter().any(|t| t.ends_with(MARKER)) && texts.contains(&second(room))
        });
        a_done && own.iter().all(|u| tg.messages(u.id).len() > QUEUED)
    };
    cluster
        .wait_for_chats(120, "b marking and answering every chat", all_answered)
        .await;
    // Whatever was handed twice comes now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!(
        "killed at {killed:?}, a dead at {takeover:?}, all answered at {:?}",
        started.elapsed()
    );

    let mut wrong = Vec::new();
    for room in &a_chats {
        let texts = shown(tg, room.id);
        let marked = texts.first().is_some_and(|t| match room.kind {
            // The draft's text so far, as a message, with the marker.
            "private" => {
                let streamed = t.strip_suffix(MARKER).map(str::trim_end);
                streamed.is_some_and(|s| !s.is_empty() && slow_answer().starts_with(s))
            }
            // Nothing of the reply showed: the marker comes on its own.
            _ => t == MARKER,
        });
        if !marked || texts.len() != 2 || texts[1] != second(room) {
            wrong.push(format!("{} chat {}: {texts:?}", room.kind, room.id));
        }
    }
    for user in &own {
        let texts = shown(tg, user.id);
        let expected: Vec<String> = std::iter::once(own_answer().trim_end().to_string())
            .chain((0..QUEUED).map(|q| format!("echo: queued {q}")))
            .collect();
        if texts != expected {
            wrong.push(format!("b's chat {}: {texts:?}", user.id));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} chats not as they should be (a's: the marker, then the answer to the second \
         message; b's: each message answered once):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let limited: Vec<String> = tg
        .calls()
        .iter()
        .filter(|c| c.error == Some(429))
        .map(|c| {
            format!(
                "{} in chat {:?} at {:?}",
                c.method,
                c.chat(),
                c.at - started
            )
        })
        .collect();
    assert!(limited.is_empty(), "no 429 from the Bot API: {limited:?}");
    let marked = cluster
        .texts(
            "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE role = 'assistant' \
             AND status = 'partial' AND instance = 'a'",
        )
        .await;
    assert_eq!(marked, [a_chats.len().to_string()], "a's replies marked");
    b.shutdown(GRACE).await;
    let log = cluster.log("a");
    assert!(!log.contains("panicked"), "{log}");
}

/// Dates the last heartbeat of the killed instance a back past the failover time, just after
/// a heartbeat of b: a counts as dead at once, and b's next heartbeat (and the sweep of dead
/// instances' replies that comes with it) is a third of the failover time away. The kill is
/// real; only the moment it is noticed is chosen, the worst one for the chats' order.
async fn a_counts_as_dead(cluster: &Cluster) {
    let beat = || async {
        let sql = "SELECT CAST(heartbeat_at AS TEXT) FROM instances WHERE id = 'b'";
        let rows = cluster.texts(sql).await;
        rows.first()
            .and_then(|ms| ms.parse::<u128>().ok())
            .expect("b's heartbeat")
    };
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis()
    };
    // b beats every third of the failover time; just after a beat, or wait for the next one.
    let third = u128::from(FAILOVER_SECS) * 1000 / 3;
    let last = beat().await;
    if now_ms().saturating_sub(last) > third / 4 {
        wait_until(FAILOVER_SECS + 30, "b's next heartbeat", || async {
            beat().await != last
        })
        .await;
    }
    let back = "UPDATE instances SET heartbeat_at = heartbeat_at - 600000 WHERE id = 'a'";
    cluster.execute(back).await;
}

impl Cluster {
    /// The address the spawned instance `id` serves HTTP (and the webhook) on, once it does.
    async fn listening(&self, id: &str) -> SocketAddr {
        let address = || http_address(&self.log(id));
        wait_until(60, "the instance listening", || async {
            address().is_some()
        })
        .await;
        address().expect("an address")
    }

    /// Runs `sql` on the database.
    async fn execute(&self, sql: &'static str) {
        if self.url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("connects");
            sqlx::query(sql).execute(&pool).await.expect("runs");
            pool.close().await;
            return;
        }
        let pool = sqlx::SqlitePool::connect(&self.url)
            .await
            .expect("connects");
        sqlx::query(sql).execute(&pool).await.expect("runs");
        pool.close().await;
    }
}
