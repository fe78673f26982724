//! What a self-hoster meets on real servers: a quiet bot whose long polls end with nothing, a
//! Bot API outage and its end, and the metrics a fresh bot serves before anything happened.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::{Bot, Install, Output};
use crate::fake_telegram::{User, private};

/// Quiet polls end after this many seconds.
const POLL_SECS: &str = "2";
const POLL: Duration = Duration::from_secs(2);

async fn start(install: &Install) -> Bot {
    let env = [
        ("PARLEY__TELEGRAM__POLL_TIMEOUT_SECS", POLL_SECS),
        ("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "50"),
    ];
    let bot = Bot::start(install, None, &env).await;
    bot.wait_healthy().await;
    bot
}

/// The log lines at WARN or ERROR (text format: time, level, target, message).
fn warnings(output: &Output) -> Vec<String> {
    let logs = format!("{}{}", output.stdout, output.stderr);
    logs.lines()
        .filter(|line| matches!(line.split_whitespace().nth(1), Some("WARN" | "ERROR")))
        .map(str::to_string)
        .collect()
}

/// Waits until `/healthz` answers `status`, for at most `secs`; returns how long that took.
async fn until_status(bot: &Bot, status: u16, secs: u64) -> Duration {
    let start = Instant::now();
    while bot.status().await != Some(status) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "/healthz did not answer {status} within {secs} s: {}",
            bot.get("/healthz").await
        );
        sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// `user` writes `text` while a poll is open (just after one started), and the answer lands;
/// returns the message id.
async fn ask_while_a_poll_is_open(bot: &Bot, user: &User, text: &str) -> i64 {
    let tg = &bot.tg;
    let polls = tg.calls_of("getUpdates").len();
    tg.wait_for(10, "the next poll", |tg| {
        tg.calls_of("getUpdates").len() > polls
    })
    .await;
    let id = tg.user_writes(&private(user), user, text);
    let answer = format!("echo: {text}");
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(user.id)
            .first()
            .is_some_and(|m| m.text == answer)
    })
    .await;
    id
}

#[tokio::test]
async fn a_quiet_bot_stays_healthy_logs_no_warning_and_answers_at_once_after_the_quiet() {
    let install = Install::new().await;
    let bot = start(&install).await;
    let quiet = Instant::now();
    let polls_before = bot.tg.calls_of("getUpdates").len();
    while quiet.elapsed() < POLL * 3 + POLL / 2 {
        assert_eq!(
            bot.status().await,
            Some(200),
            "{}",
            bot.get("/healthz").await
        );
        sleep(Duration::from_millis(200)).await;
    }
    let quiet_polls = bot.tg.calls_of("getUpdates").len() - polls_before;
    assert!(
        (3..=5).contains(&quiet_polls),
        "each quiet poll stays open for its timeout: {quiet_polls} polls in 7 s"
    );

    let alice = User::new(951, "Alice");
    let id = ask_while_a_poll_is_open(&bot, &alice, "still there?").await;
    let tg = &bot.tg;
    assert_eq!(
        tg.waited_for_poll(alice.id, id),
        Some(Duration::ZERO),
        "the message reached the bot through a poll already open"
    );
    let delivered = tg.delivered(alice.id, id).expect("delivered");
    let asked = install.fake.requests().last().expect("asked").at;
    assert!(
        asked.duration_since(delivered) < Duration::from_secs(1),
        "the model was asked {:?} after delivery",
        asked.duration_since(delivered)
    );
    let output = bot.terminate().await;
    assert_eq!(output.code, Some(0));
    assert_eq!(
        warnings(&output),
        Vec::<String>::new(),
        "a quiet bot warns of nothing"
    );
}

#[tokio::test]
async fn a_bot_api_outage_turns_health_failing_and_the_first_poll_after_it_heals_it() {
    let install = Install::new().await;
    let bot = start(&install).await;
    bot.tg.outage(true);
    // Failing once the polls have failed for longer than one quiet poll lasts.
    until_status(&bot, 503, 20).await;
    let body = bot.get("/healthz").await;
    assert!(
        body.contains("getUpdates: the Bot API answered 502"),
        "{body}"
    );
    sleep(POLL * 2).await;
    bot.tg.outage(false);
    let healed = until_status(&bot, 200, 20).await;
    assert!(
        healed < Duration::from_secs(8),
        "healthy {healed:?} after the Bot API came back (backoff at most 5 s)"
    );
    let bob = User::new(952, "Bob");
    ask_while_a_poll_is_open(&bot, &bob, "back?").await;
    let output = bot.terminate().await;
    let warned = warnings(&output);
    assert_eq!(warned.len(), 1, "one warning for the outage: {warned:#?}");
    assert!(warned[0].contains("telegram polling failed"), "{warned:?}");
    let logs = format!("{}{}", output.stdout, output.stderr);
    assert!(logs.contains("telegram polling recovered"), "{logs}");
}

/// The metric families the README's metrics table lists.
fn readme_families() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let table = readme
        .split("### Metrics: `GET /metrics`")
        .nth(1)
        .expect("the README's metrics section");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.split('`').nth(1))
        .filter(|name| name.starts_with("parley_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_first_scrape_lists_every_family_and_a_paced_reply_counts_no_429() {
    let install = Install::new().await;
    let bot = start(&install).await;
    let first = bot.get("/metrics").await;
    let families = readme_families();
    assert!(families.len() >= 16, "{families:?}");
    for family in &families {
        let declared = format!("# TYPE {family} ");
        assert!(first.contains(&declared), "{family} missing from:\n{first}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(first.contains(&format!(r#"parley_build_info{{version="{version}"}} 1"#)));
    for zero in [
        r#"parley_replies_total{platform="telegram",outcome="complete"} 0"#,
        r#"parley_platform_rate_limited_total{platform="telegram",kind="edit"} 0"#,
        r#"parley_completion_errors_total{kind="rate_limited"} 0"#,
    ] {
        assert!(
            first.lines().any(|l| l == zero),
            "{zero} missing from:\n{first}"
        );
    }

    let carol = User::new(953, "Carol");
    ask_while_a_poll_is_open(&bot, &carol, "count me").await;
    let after = bot.get("/metrics").await;
    let calls = r#"parley_platform_calls_total{platform="telegram""#;
    let counted = after
        .lines()
        .any(|l| l.starts_with(calls) && !l.ends_with(" 0"));
    assert!(counted, "the reply's calls are counted: {after}");
    assert_eq!(bot.tg.too_many_requests(), 0, "the reply met no 429");
    let limited: Vec<_> = after
        .lines()
        .filter(|l| l.starts_with("parley_platform_rate_limited_total{"))
        .collect();
    assert!(!limited.is_empty(), "{after}");
    assert!(limited.iter().all(|l| l.ends_with(" 0")), "{limited:?}");
    bot.terminate().await;
}

/// The figures of the field-realism issue, for any build: `PARLEY_BIN=path cargo test --test it
/// ops::field::field_report -- --ignored --nocapture` runs that binary with the production poll
/// timeout, idles it for `FIELD_IDLE_SECS` (120), asks once, then puts the Bot API into an outage
/// for `FIELD_OUTAGE_SECS` (45) and asks again as it ends. Prints WARN lines, health over the
/// idle period, the message's wait for a poll and its ingest, and the recovery times.
#[tokio::test]
#[ignore = "a measurement of several minutes"]
async fn field_report() {
    let secs = |name: &str, default: u64| {
        let value = std::env::var(name).ok().and_then(|v| v.parse().ok());
        Duration::from_secs(value.unwrap_or(default))
    };
    let (idle, outage) = (secs("FIELD_IDLE_SECS", 120), secs("FIELD_OUTAGE_SECS", 45));
    let install = Install::new().await;
    let bin = std::env::var("PARLEY_BIN").unwrap_or(env!("CARGO_BIN_EXE_parley").into());
    let bot = Bot::start_binary(&install, &bin, &[]).await;
    bot.wait_healthy().await;
    let start = Instant::now();
    let (mut ok, mut failing, mut longest, mut streak) = (0, 0, Duration::ZERO, None);
    while start.elapsed() < idle {
        let at = Instant::now();
        if bot.status().await == Some(200) {
            ok += 1;
            streak = None;
        } else {
            failing += 1;
            let since = *streak.get_or_insert(at);
            longest = longest.max(at - since);
        }
        sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "idle {idle:?}: /healthz 200 in {ok} samples, 503 in {failing}, longest 503 {longest:?}"
    );
    let report = |what: &str, user: &User, id: i64, sent: Instant| {
        let tg = &bot.tg;
        let waited = tg.waited_for_poll(user.id, id);
        let delivered = tg.delivered(user.id, id).expect("delivered");
        let asked = install.fake.requests().last().expect("asked").at;
        eprintln!(
            "{what}: waited for a poll {waited:?}; delivered → model {:?}; sent → model {:?}",
            asked.duration_since(delivered),
            asked.duration_since(sent)
        );
    };
    let alice = User::new(961, "Alice");
    let sent = Instant::now();
    let id = bot
        .tg
        .user_writes(&private(&alice), &alice, "after the quiet");
    bot.tg
        .wait_for(60, "the answer", |tg| !tg.messages(alice.id).is_empty())
        .await;
    report("message after idling", &alice, id, sent);

    bot.tg.outage(true);
    let down = Instant::now();
    let mut turned = None;
    while down.elapsed() < outage {
        if turned.is_none() && bot.status().await == Some(503) {
            turned = Some(down.elapsed());
        }
        sleep(Duration::from_millis(200)).await;
    }
    bot.tg.outage(false);
    let back = Instant::now();
    let bob = User::new(962, "Bob");
    let id = bot.tg.user_writes(&private(&bob), &bob, "are you back?");
    let mut healed = None;
    while healed.is_none() && back.elapsed() < Duration::from_secs(120) {
        if bot.status().await == Some(200) {
            healed = Some(back.elapsed());
        }
        sleep(Duration::from_millis(100)).await;
    }
    bot.tg
        .wait_for(120, "the answer", |tg| !tg.messages(bob.id).is_empty())
        .await;
    eprintln!(
        "outage {outage:?}: /healthz 503 after {turned:?}; 200 again {healed:?} after it ended"
    );
    report("message sent as the outage ended", &bob, id, back);
    let output = bot.terminate().await;
    let warned = warnings(&output);
    eprintln!("WARN/ERROR lines: {}", warned.len());
    for line in warned.iter().take(12) {
        eprintln!("  {line}");
    }
}
