//! The failover round of `--instances 2`: after the idle round every conversation writes (wave
//! A, over the ramp); while those replies stream, every conversation writes again (wave B, over
//! a ramp centred on the kill) and instance a is killed with SIGKILL. Then the round waits
//! until every message is accounted for, and measures the failover: how long after the kill
//! the surviving instance first wrote, and first asked the model, in a chat the killed one was
//! answering (it held the chat's lease), and what became of every message.
//!
//! A message ends as one of [`Outcome`]: answered exactly, its reply marked interrupted (the
//! restart marker after a prefix of the exact text), told to send it again, not received by
//! any instance (Discord: the killed instance's shard has no session until it restarts, the
//! limit of static shard ranges), or lost: no reply, a reply that is not the exact text nor a
//! marked prefix of it. Messages left over in a chat (a second answer, a stray text) count as
//! extra.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use parley::engine::reply::{INTERRUPTED, RESTARTED};
use tokio::time::{Instant, sleep, sleep_until};

use super::cluster::Cluster;
use super::drive::{Conversation, Fakes, Side, Turn, telegram_rendering};
use super::report::Logs;

/// The start of what the bot says when a message waited too long for its chat's instance.
const RETRY: &str = "Sorry, your message arrived while the bot was switching over";

/// The round ends when every message is accounted for, or when the platforms saw no call for
/// this long after the failover time passed.
const QUIET: Duration = Duration::from_secs(20);

/// What became of one message of the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Its reply shows exactly the model's text.
    Exact,
    /// Its reply shows a prefix of the text and the restart marker.
    Marked,
    /// The bot asked its user to send it again.
    Retry,
    /// Discord: no instance had a session for its shard when it was sent.
    Unreceived,
    /// No reply, or one that is neither exact nor marked.
    Lost,
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Exact,
    Outcome::Marked,
    Outcome::Retry,
    Outcome::Unreceived,
    Outcome::Lost,
];

/// How the round runs.
pub struct Plan {
    /// Over which each wave's messages are sent.
    pub ramp: Duration,
    /// From the round's start to the kill.
    pub kill_after: Duration,
    /// `telegram.failover_secs`.
    pub failover: Duration,
    /// The longest the round waits for its replies.
    pub limit: Duration,
    /// The turn number of wave A (wave B is the next).
    pub turn: usize,
    /// `store.database_url`, to read which chats the killed instance held.
    pub database: String,
}

/// Counts of outcomes in one group of chats of one side.
#[derive(Debug, Clone, Default)]
struct Tally {
    chats: usize,
    outcomes: BTreeMap<Outcome, usize>,
    extra: usize,
}

/// What the round measured, per side (Telegram, Discord).
#[derive(Debug, Clone)]
pub struct Report {
    n: usize,
    killed: String,
    plan_kill: Duration,
    failover: Duration,
    /// Replies the killed instance was streaming at the kill (its rows in the database).
    streaming: usize,
    /// The chats the killed instance held, and the others.
    held: [Tally; 2],
    others: [Tally; 2],
    /// From the kill to the survivor's first accepted write in a held chat.
    first_write: [Option<Duration>; 2],
    /// From the kill to the first completion request for a held chat's message.
    first_request: [Option<Duration>; 2],
    /// From the kill to the last accepted write in a held chat.
    last_write: [Option<Duration>; 2],
    /// Webhook deliveries that failed after the kill (the fake Telegram sent them again).
    failed_deliveries: usize,
    /// The round's wall time, from the start to every message accounted for.
    wall: Duration,
}

impl Report {
    /// Messages lost (not exact, marked, retried or unreceived) and extra messages, on
    /// Telegram and on Discord.
    pub fn lost(&self) -> [usize; 2] {
        let of = |t: &Tally| t.outcomes.get(&Outcome::Lost).copied().unwrap_or(0) + t.extra;
        [0, 1].map(|side| of(&self.held[side]) + of(&self.others[side]))
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Telegram => 0,
        Side::Discord => 1,
    }
}

/// The marker an interrupted reply ends with.
fn marker() -> String {
    format!("{INTERRUPTED}{RESTARTED}")
}

/// `shown` is a prefix of the turn's reply (as the platform renders a prefix) and the marker.
fn marked(turn: &Turn, shown: &str) -> bool {
    let Some(part) = shown.strip_suffix(&marker()) else {
        return false;
    };
    let part = part.trim_end();
    if turn.visible.starts_with(part) {
        return true;
    }
    let chars: Vec<char> = turn.text.chars().collect();
    (1..=chars.len()).any(|k| {
        let prefix: String = chars[..k].iter().collect();
        let rendered = match turn.conversation.side {
            Side::Telegram => telegram_rendering(&prefix),
            Side::Discord => prefix,
        };
        rendered.trim_end() == part
    })
}

/// The outcomes of a chat's turns (in the order sent) from the bot messages the round added,
/// and how many messages are left over; `received` says whether an instance got the message.
fn classify(
    turns: &[&Turn],
    added: &[String],
    received: impl Fn(&Turn) -> bool,
) -> (Vec<Outcome>, usize) {
    let mut at = 0;
    let mut outcomes = Vec::new();
    for turn in turns {
        if !received(turn) {
            outcomes.push(Outcome::Unreceived);
            continue;
        }
        let outcome = match added.get(at) {
            Some(text) if *text == turn.visible => Outcome::Exact,
            Some(text) if marked(turn, text) => Outcome::Marked,
            Some(text) if text.starts_with(RETRY) => Outcome::Retry,
            _ => Outcome::Lost,
        };
        if outcome != Outcome::Lost {
            at += 1;
        }
        outcomes.push(outcome);
    }
    (outcomes, added.len().saturating_sub(at))
}

/// One chat of the round: its conversation, the bot messages it held before, its two turns.
struct Chat {
    conversation: Conversation,
    before: usize,
    turns: Vec<Turn>,
}

impl Chat {
    fn added(&self, fakes: &Fakes) -> Vec<String> {
        let texts = fakes.texts(&self.conversation);
        texts.get(self.before..).unwrap_or_default().to_vec()
    }

    fn outcomes(&self, fakes: &Fakes) -> (Vec<Outcome>, usize) {
        let turns: Vec<&Turn> = self.turns.iter().collect();
        let received = |turn: &Turn| match turn.conversation.side {
            Side::Telegram => true,
            Side::Discord => fakes.dc.delivered(&turn.message).is_some(),
        };
        classify(&turns, &self.added(fakes), received)
    }
}

/// Runs the round against the cluster, killing its first instance.
pub async fn round(
    fakes: &Fakes,
    conversations: &[Conversation],
    cluster: &mut Cluster,
    plan: &Plan,
) -> Report {
    let count = conversations.len().max(1) as u32;
    let mut chats: Vec<Chat> = conversations
        .iter()
        .map(|c| Chat {
            conversation: c.clone(),
            before: fakes.texts(c).len(),
            turns: Vec::new(),
        })
        .collect();
    let start = Instant::now();
    let wave_b = start + plan.kill_after.saturating_sub(plan.ramp / 2);
    let kill_at = start + plan.kill_after;
    // Both waves and the kill, in the order of their time.
    let mut steps: Vec<(Instant, Option<(usize, usize)>)> = Vec::new();
    for i in 0..chats.len() {
        let offset = plan.ramp * i as u32 / count;
        steps.push((start + offset, Some((i, plan.turn))));
        steps.push((wave_b + offset, Some((i, plan.turn + 1))));
    }
    steps.push((kill_at, None));
    steps.sort_by_key(|s| s.0);
    let mut killed = None;
    for (at, step) in steps {
        sleep_until(at).await;
        match step {
            Some((i, turn)) => {
                let sent = fakes.send(&chats[i].conversation, turn);
                chats[i].turns.push(sent);
            }
            None => {
                let sigkill = Instant::now();
                cluster.bots[0].kill().await;
                eprintln!(
                    "failover: killed {} after {:?} (reaped in {:?})",
                    cluster.ids[0],
                    sigkill - start,
                    sigkill.elapsed()
                );
                killed = Some((sigkill, Instant::now()));
            }
        }
    }
    let (sigkill, reaped) = killed.expect("the kill was a step");
    let victim = cluster.ids[0].clone();
    let (held, streaming) = held_by(&plan.database, &victim).await;
    // Wait until every message is accounted for, or the platforms fell quiet.
    let deadline = start + plan.limit;
    let calm_from = reaped + plan.failover;
    let mut calls = 0;
    let mut changed = Instant::now();
    loop {
        sleep(Duration::from_millis(500)).await;
        let done = chats
            .iter()
            .all(|c| !c.outcomes(fakes).0.contains(&Outcome::Lost));
        let now_calls = fakes.tg.calls().len() + fakes.dc.calls().len();
        if now_calls != calls {
            calls = now_calls;
            changed = Instant::now();
        }
        let quiet = Instant::now() > calm_from && changed.elapsed() > QUIET;
        if done || quiet || Instant::now() > deadline {
            break;
        }
    }
    // Let the last calls settle.
    sleep(Duration::from_millis(300)).await;
    let wall = start.elapsed();
    let logs = Logs::read(fakes);
    let mut report = Report {
        n: chats.len(),
        killed: victim.clone(),
        plan_kill: plan.kill_after,
        failover: plan.failover,
        streaming,
        held: Default::default(),
        others: Default::default(),
        first_write: [None; 2],
        first_request: [None; 2],
        last_write: [None; 2],
        failed_deliveries: fakes
            .tg
            .deliveries()
            .iter()
            .filter(|d| d.at > sigkill && d.outcome.is_err())
            .count(),
        wall,
    };
    // A few examples of each kind of loss, for the log.
    let mut shown_lost = BTreeMap::new();
    let earliest = |slot: &mut Option<Duration>, value: Duration| {
        *slot = Some(slot.map_or(value, |v| v.min(value)));
    };
    for chat in &chats {
        let side = side_index(chat.conversation.side);
        let key = match chat.conversation.side {
            Side::Telegram => format!("telegram:{}", chat.conversation.chat),
            Side::Discord => format!("discord:{}", chat.conversation.chat),
        };
        let is_held = held.contains(&key);
        let (outcomes, extra) = chat.outcomes(fakes);
        let kind = (side, is_held, outcomes.contains(&Outcome::Lost), extra > 0);
        let shown = shown_lost.entry(kind).or_insert(0);
        if (kind.2 || kind.3) && *shown < 2 {
            *shown += 1;
            let added = chat.added(fakes);
            let short: Vec<String> = added.iter().map(|t| abridged(t)).collect();
            eprintln!(
                "failover: {:?} chat {} (held by {victim}: {is_held}): {outcomes:?}, {extra} \
                 extra; it shows {short:?}",
                chat.conversation.side, chat.conversation.chat
            );
        }
        let tally = if is_held {
            &mut report.held[side]
        } else {
            &mut report.others[side]
        };
        tally.chats += 1;
        tally.extra += extra;
        for outcome in outcomes {
            *tally.outcomes.entry(outcome).or_default() += 1;
        }
        if !is_held {
            continue;
        }
        let after: Vec<_> = logs
            .writes_in(chat.conversation.chat)
            .filter(|w| w.at > reaped)
            .collect();
        if let Some(first) = after.first() {
            earliest(&mut report.first_write[side], first.at - sigkill);
        }
        if let Some(last) = after.last() {
            let value = last.at - sigkill;
            report.last_write[side] = Some(report.last_write[side].map_or(value, |v| v.max(value)));
        }
        for turn in &chat.turns {
            let timing = fakes.llm.timing(&turn.tag);
            if let Some(timing) = timing.filter(|t| t.received > reaped) {
                earliest(&mut report.first_request[side], timing.received - sigkill);
            }
        }
    }
    report
}

/// The start and the end of a long text, and its length.
fn abridged(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 90 {
        return text.to_string();
    }
    let head: String = chars[..40].iter().collect();
    let tail: String = chars[chars.len() - 45..].iter().collect();
    format!("{head} … {tail} ({} chars)", chars.len())
}

/// The chat leases `instance` held, and the replies it was streaming, as the database says.
async fn held_by(database: &str, instance: &str) -> (HashSet<String>, usize) {
    let leases = "SELECT scope FROM chat_leases WHERE instance = $1 AND released_at IS NULL";
    let streaming = "SELECT CAST(id AS TEXT) FROM messages WHERE role = 'assistant' \
         AND status = 'streaming' AND instance = $1";
    let scopes = texts(database, leases, instance).await;
    let replies = texts(database, streaming, instance).await;
    (scopes.into_iter().collect(), replies.len())
}

/// The rows of `sql`, one text column, with `instance` bound to `$1`.
async fn texts(database: &str, sql: &'static str, instance: &str) -> Vec<String> {
    if database.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database).await.expect("the database");
        let query = sqlx::query_scalar(sql).bind(instance);
        let rows = query.fetch_all(&pool).await.expect("the rows");
        pool.close().await;
        return rows;
    }
    let pool = sqlx::SqlitePool::connect(database)
        .await
        .expect("the database");
    let query = sqlx::query_scalar(sql).bind(instance);
    let rows = query.fetch_all(&pool).await.expect("the rows");
    pool.close().await;
    rows
}

/// The round's results in Markdown: Telegram and Discord side by side.
pub fn render(report: &Report) -> String {
    let ms = |v: Option<Duration>| v.map_or("–".to_string(), |v| format!("{}", v.as_millis()));
    let outcomes = |t: &Tally| {
        let counts: Vec<String> = OUTCOMES
            .iter()
            .map(|o| t.outcomes.get(o).copied().unwrap_or(0).to_string())
            .collect();
        counts.join(" / ")
    };
    let mut lines = vec![format!(
        "Failover round (N={}): every conversation writes twice (wave A over the ramp, wave B \
         over a ramp centred on the kill); instance {} is killed with SIGKILL {} ms after the \
         round starts; telegram.failover_secs = {}. Telegram: webhook behind the round-robin \
         proxy; Discord: {} ran shard 0 of 2 (its guilds receive nothing after the kill).",
        report.n,
        report.killed,
        report.plan_kill.as_millis(),
        report.failover.as_secs(),
        report.killed
    )];
    lines.push("\n| failover round | Telegram | Discord |".into());
    lines.push("|---|---|---|".into());
    let mut row = |name: &str, cell: &dyn Fn(usize) -> String| {
        lines.push(format!("| {name} | {} | {} |", cell(0), cell(1)));
    };
    row(
        &format!("chats {} held at the kill (its leases)", report.killed),
        &|i| report.held[i].chats.to_string(),
    );
    row(
        "… their messages: exact / marked interrupted / told to retry / not received / lost",
        &|i| outcomes(&report.held[i]),
    );
    row("… extra messages in them", &|i| {
        report.held[i].extra.to_string()
    });
    row(
        "the other chats' messages: exact / marked / retry / not received / lost",
        &|i| outcomes(&report.others[i]),
    );
    row("… extra messages in them", &|i| {
        report.others[i].extra.to_string()
    });
    row(
        "failover time: kill → first accepted write in a held chat (ms)",
        &|i| ms(report.first_write[i]),
    );
    row(
        "kill → first completion request for a held chat (ms)",
        &|i| ms(report.first_request[i]),
    );
    row("kill → last accepted write in a held chat (ms)", &|i| {
        ms(report.last_write[i])
    });
    row(
        "webhook deliveries that failed after the kill (sent again)",
        &|i| {
            if i == 0 {
                report.failed_deliveries.to_string()
            } else {
                "–".into()
            }
        },
    );
    lines.push(format!(
        "\nReplies {} was streaming at the kill (both sides): {}. The round took {:.1} s.",
        report.killed,
        report.streaming,
        report.wall.as_secs_f64()
    ));
    lines.join("\n")
}

/// Checks the classification on made-up chats at every start of the benchmark (it has no test
/// harness): an exact reply and a marked prefix pass, a marked text that is not a prefix, a
/// missing reply and a second answer do not.
pub fn self_check() {
    let now = Instant::now();
    let turn = |side: Side, tag: &str| {
        let conversation = Conversation::new(if side == Side::Telegram { 0 } else { 1 }, None);
        let text = super::llm::reply_text(tag, 300);
        let visible = match side {
            Side::Telegram => telegram_rendering(&text),
            Side::Discord => text.clone(),
        };
        Turn {
            conversation,
            tag: tag.into(),
            text,
            visible,
            message: String::new(),
            before: 0,
            window: (now, now),
            shown: Vec::new(),
        }
    };
    let all = |_: &Turn| true;
    for side in [Side::Telegram, Side::Discord] {
        let (a, b) = (turn(side, "c0t4"), turn(side, "c0t5"));
        let turns = [&a, &b];
        let cut: String = a.text.chars().take(120).collect();
        let cut = match side {
            Side::Telegram => telegram_rendering(&cut),
            Side::Discord => cut,
        };
        let marked = format!("{cut}\n\n{}", marker());
        let exact = b.visible.clone();
        let check = |added: &[String], want: &[Outcome], extra: usize| {
            let got = classify(&turns, added, all);
            assert_eq!(got, (want.to_vec(), extra), "{side:?} {added:?}");
        };
        use Outcome::{Exact, Lost, Marked, Retry, Unreceived};
        check(&[a.visible.clone(), exact.clone()], &[Exact, Exact], 0);
        check(&[marked.clone(), exact.clone()], &[Marked, Exact], 0);
        check(&[marker(), exact.clone()], &[Marked, Exact], 0);
        let mangled = format!("{}#\n\n{}", &cut[..cut.len() / 2], marker());
        check(&[mangled, exact.clone()], &[Lost, Lost], 2);
        check(std::slice::from_ref(&exact), &[Lost, Exact], 0);
        check(std::slice::from_ref(&marked), &[Marked, Lost], 0);
        check(
            &[marked.clone(), exact.clone(), exact.clone()],
            &[Marked, Exact],
            1,
        );
        let retry = format!("{RETRY} and waited too long — please send it again.");
        check(&[marked.clone(), retry], &[Marked, Retry], 0);
        let none = |_: &Turn| false;
        assert_eq!(classify(&turns, &[], none).0, [Unreceived, Unreceived]);
    }
}
