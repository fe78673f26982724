//! Webhook mode: Telegram (the fake) posts updates to `/telegram/webhook` through a round-robin
//! proxy, as a load balancer in front of the bot would; the secret header is checked, an update
//! delivered twice is answered once, and switching back to polling removes the webhook.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use parley::app::App;
use serde_json::{Value, json};

use super::Harness;
use crate::fake_llm::FakeLlm;
use crate::fake_telegram::{FAKE_TOKEN, FakeLimits, FakeTelegram, User, private};
use crate::proxy::RoundRobin;
use crate::support::{app_config, app_env};

/// The secret the tests configure.
const SECRET: &str = "webhook-Secret_42";

/// A bot in webhook mode behind `proxy`, started and put into the proxy's rotation.
async fn webhook_harness(proxy: &RoundRobin) -> Harness {
    let url = format!("{}/telegram/webhook", proxy.url());
    let env = [
        ("TELEGRAM__WEBHOOK_URL", url.as_str()),
        ("TELEGRAM__WEBHOOK_SECRET", SECRET),
    ];
    let mut harness = Harness::unstarted(FakeLimits::default(), &env).await;
    harness
        .start()
        .await
        .expect("the bot starts in webhook mode");
    proxy.add(address(harness.app()));
    harness
}

/// Waits until a delivery to the bot succeeded and Alice's chat (901) shows `answer` first.
async fn until_delivered_and_answered(harness: &Harness, answer: &str) {
    let tg = &harness.tg;
    tg.wait_for(20, "a delivery that succeeded", |tg| {
        tg.deliveries().iter().any(|d| d.outcome.is_ok())
    })
    .await;
    tg.wait_for(20, "the answer", |tg| {
        tg.messages(901).first().is_some_and(|m| m.text == answer)
    })
    .await;
}

fn address(app: Option<&App>) -> SocketAddr {
    app.and_then(App::http_address).expect("the listener is up")
}

/// A private message update as Telegram posts it.
fn update(update_id: i64, chat: i64, text: &str) -> Value {
    json!({ "update_id": update_id, "message": { "message_id": 5, "date": 1_760_000_000,
        "chat": { "id": chat, "type": "private", "first_name": "Mallory" },
        "from": { "id": chat, "is_bot": false, "first_name": "Mallory" }, "text": text } })
}

/// Posts `body` to the bot's webhook at `bot` with `secret` (none when `None`).
async fn post(bot: SocketAddr, secret: Option<&str>, body: String) -> u16 {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{bot}/telegram/webhook"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request
        .send()
        .await
        .expect("the bot answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_message_through_the_webhook_is_answered_exactly() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    let url = format!("{}/telegram/webhook", proxy.url());
    assert_eq!(harness.tg.webhook(), url);
    let set = harness.tg.calls_of("setWebhook");
    let body = &set.last().expect("setWebhook was called").body;
    assert_eq!(body["secret_token"], SECRET);
    assert_eq!(body["drop_pending_updates"], false);
    let allowed = json!(["message", "callback_query", "stopped_message_generation"]);
    assert_eq!(body["allowed_updates"], allowed);
    let alice = User::new(901, "Alice");
    harness
        .tg
        .user_writes(&private(&alice), &alice, "hello by webhook");
    harness
        .tg
        .wait_for(20, "the answer", |tg| {
            tg.messages(901)
                .first()
                .is_some_and(|m| m.text == "echo: hello by webhook")
        })
        .await;
    assert_eq!(harness.tg.messages(901).len(), 1);
    assert!(harness.tg.calls_of("getUpdates").is_empty(), "no polling");
    let deliveries = harness.tg.deliveries();
    assert!(
        deliveries.iter().all(|d| d.outcome == Ok(200)),
        "{deliveries:?}"
    );
    assert_eq!(proxy.routed().len(), deliveries.len());
    let health = harness.app().expect("running").health().report();
    assert!(health["telegram"].is_ok(), "{health:?}");
    harness.stop().await;
    assert_eq!(
        harness.tg.webhook(),
        url,
        "stopping keeps the webhook for the next start"
    );
}

#[tokio::test]
async fn a_request_without_the_right_secret_is_refused_and_nothing_is_answered() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    let bot = address(harness.app());
    let forged = update(9_000, 902, "forged").to_string();
    assert_eq!(post(bot, None, forged.clone()).await, 401);
    assert_eq!(
        post(bot, Some("webhook-Secret_43"), forged.clone()).await,
        401
    );
    assert_eq!(post(bot, Some(SECRET), "not json".into()).await, 400);
    assert_eq!(post(bot, Some(SECRET), r#"{"hello":1}"#.into()).await, 400);
    let alice = User::new(901, "Alice");
    harness.tg.user_writes(&private(&alice), &alice, "real");
    harness
        .tg
        .wait_for(20, "the real answer", |tg| !tg.messages(901).is_empty())
        .await;
    assert!(
        harness.tg.messages(902).is_empty(),
        "the forged update was answered"
    );
    assert_eq!(
        harness.llm.requests().len(),
        1,
        "only the real message asked the model"
    );
    harness.stop().await;
}

#[tokio::test]
async fn an_update_delivered_twice_is_answered_once() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    // The bot's 200 never reaches Telegram, which sends the update again.
    harness.tg.lose_webhook_answers(1);
    let alice = User::new(901, "Alice");
    harness
        .tg
        .user_writes(&private(&alice), &alice, "only once");
    until_delivered_and_answered(&harness, "echo: only once").await;
    let deliveries = harness.tg.deliveries();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0].update_id, deliveries[1].update_id);
    assert_eq!(harness.tg.messages(901).len(), 1);
    assert_eq!(harness.llm.requests().len(), 1, "the model was asked once");
    harness.stop().await;
}

#[tokio::test]
async fn switching_back_to_polling_removes_the_webhook_and_loses_nothing() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    // Stopped, the bot's port refuses: the proxy answers 502, as a load balancer does.
    harness.stop().await;
    let alice = User::new(901, "Alice");
    // Written while no bot runs: Telegram keeps it, its deliveries failing.
    harness
        .tg
        .user_writes(&private(&alice), &alice, "while away");
    harness
        .tg
        .wait_for(20, "a failed delivery", |tg| {
            tg.deliveries().iter().any(|d| d.outcome.is_err())
        })
        .await;
    let polling = harness.config_with(|telegram| telegram.webhook = None);
    harness.start_with(polling).await.expect("starts polling");
    assert_eq!(harness.tg.webhook(), "");
    harness
        .tg
        .wait_for(20, "the answer by polling", |tg| {
            tg.messages(901)
                .first()
                .is_some_and(|m| m.text == "echo: while away")
        })
        .await;
    let polls = harness.tg.calls_of("getUpdates");
    assert!(
        polls.iter().all(|c| c.error.is_none()),
        "no 409 Conflict: {polls:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_webhook_url_telegram_refuses_stops_start_up_naming_the_setting() {
    let env = [
        (
            "TELEGRAM__WEBHOOK_URL",
            "https://bot.example.invalid/telegram/webhook",
        ),
        ("TELEGRAM__WEBHOOK_SECRET", SECRET),
    ];
    let mut harness = Harness::unstarted(FakeLimits::default(), &env).await;
    let error = harness.start().await.expect_err("setWebhook refuses");
    let text = format!("{error:#}");
    assert!(text.contains("telegram.webhook_url"), "{text}");
    assert!(text.contains("Failed to resolve host"), "{text}");
    assert!(
        !text.contains(SECRET) && !text.contains(FAKE_TOKEN),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[tokio::test]
async fn two_bots_behind_a_round_robin_proxy_answer_every_message_once() {
    let (tg, llm, proxy) = (
        FakeTelegram::start().await,
        FakeLlm::start().await,
        RoundRobin::start().await,
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut apps = Vec::new();
    for dir in &dirs {
        let mut env: HashMap<String, String> = app_env(&llm, &dir.path().join("parley.db"));
        let url = format!("{}/telegram/webhook", proxy.url());
        for (key, value) in [
            ("TOKEN", FAKE_TOKEN.to_string()),
            ("API_URL", tg.api_url()),
            ("EDIT_INTERVAL_MS", "50".into()),
            ("WEBHOOK_URL", url),
            ("WEBHOOK_SECRET", SECRET.into()),
        ] {
            env.insert(format!("PARLEY__TELEGRAM__{key}"), value);
        }
        let app = App::start(app_config(&env)).await.expect("starts");
        proxy.add(address(Some(&app)));
        apps.push(app);
    }
    let users: Vec<User> = (0..6).map(|i| User::new(910 + i, "User")).collect();
    for user in &users {
        tg.user_writes(&private(user), user, &format!("hi from {}", user.id));
    }
    for user in &users {
        let want = format!("echo: hi from {}", user.id);
        tg.wait_for(20, "every answer", |tg| {
            tg.messages(user.id).first().is_some_and(|m| m.text == want)
        })
        .await;
    }
    for user in &users {
        assert_eq!(tg.messages(user.id).len(), 1, "answered once");
    }
    assert_eq!(llm.requests().len(), users.len());
    let routed = proxy.routed();
    for app in &apps {
        let backend = address(Some(app));
        assert!(routed.contains(&backend), "{backend} got no update");
    }
    for app in apps {
        app.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn updates_of_one_chat_come_one_at_a_time_and_are_answered_in_order() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    let alice = User::new(901, "Alice");
    let texts = ["one", "two", "three", "four"];
    for text in texts {
        harness.tg.user_writes(&private(&alice), &alice, text);
    }
    let want: Vec<String> = texts.iter().map(|t| format!("echo: {t}")).collect();
    harness
        .tg
        .wait_for(20, "every answer", |tg| {
            let shown: Vec<String> = tg.messages(901).into_iter().map(|m| m.text).collect();
            shown == want
        })
        .await;
    let delivered: Vec<i64> = harness
        .tg
        .deliveries()
        .iter()
        .map(|d| d.update_id)
        .collect();
    let mut sorted = delivered.clone();
    sorted.sort();
    assert_eq!(delivered, sorted, "delivered in order");
    let asked: Vec<Vec<String>> = harness
        .llm_bodies()
        .iter()
        .map(super::user_contents)
        .collect();
    let last: Vec<String> = asked.iter().filter_map(|u| u.last().cloned()).collect();
    assert_eq!(last, texts, "the model was asked in order");
    harness.stop().await;
}

/// The log lines of a child process as they come.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<String>>);

impl Logs {
    /// Collects `stream` until it closes.
    fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Self {
        use tokio::io::AsyncBufReadExt;
        let logs = Self::default();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.0.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        logs
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// The address the listener logged it serves on.
    async fn listening(&self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if let Some(address) = crate::support::log::http_address(&text) {
                return address;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no listener: {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn parley_run_in_webhook_mode_answers_and_logs_no_secret_at_trace_level() {
    let (tg, llm, proxy) = (
        FakeTelegram::start().await,
        FakeLlm::start().await,
        RoundRobin::start().await,
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/telegram/webhook", proxy.url());
    let mut child = crate::support::parley_command(&["run"], &llm, &dir.path().join("parley.db"))
        .env("PARLEY__TELEGRAM__TOKEN", FAKE_TOKEN)
        .env("PARLEY__TELEGRAM__API_URL", tg.api_url())
        .env("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "50")
        .env("PARLEY__TELEGRAM__WEBHOOK_URL", &url)
        .env("PARLEY__TELEGRAM__WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "trace")
        .spawn()
        .expect("start parley run");
    let logs = Logs::collect(child.stderr.take().expect("piped"));
    let _stdout = Logs::collect(child.stdout.take().expect("piped"));
    proxy.add(logs.listening().await);
    let alice = User::new(903, "Alice");
    tg.user_writes(&private(&alice), &alice, "hello from run");
    tg.wait_for(30, "the answer", |tg| {
        tg.messages(903)
            .first()
            .is_some_and(|m| m.text == "echo: hello from run")
    })
    .await;
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.expect("kill runs").success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("parley run exits")
        .expect("an exit status");
    let text = logs.text();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("TRACE"), "trace logging is on");
    assert!(text.contains("/telegram/webhook"), "{text}");
    let token = FAKE_TOKEN.split(':').nth(1).unwrap();
    assert!(!text.contains(SECRET), "the webhook secret is in the log");
    assert!(!text.contains(token), "the bot token is in the log");
}

#[tokio::test]
async fn an_update_sent_again_after_a_slow_answer_is_answered_once() {
    let proxy = RoundRobin::start().await;
    let mut harness = webhook_harness(&proxy).await;
    // Telegram gives up on the first request before its 200 comes back, and sends it again.
    harness
        .tg
        .webhook_answer_timeout(Duration::from_millis(300));
    proxy.slow_answers(1, Duration::from_secs(2));
    let alice = User::new(901, "Alice");
    harness.tg.user_writes(&private(&alice), &alice, "slowly");
    until_delivered_and_answered(&harness, "echo: slowly").await;
    let deliveries = harness.tg.deliveries();
    let first = &deliveries[0].outcome;
    assert_eq!(
        first.as_ref().err().map(String::as_str),
        Some("Read timeout expired")
    );
    let id = deliveries[0].update_id;
    assert!(deliveries.len() >= 2, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d.update_id == id),
        "{deliveries:?}"
    );
    assert_eq!(harness.tg.messages(901).len(), 1);
    assert_eq!(harness.llm.requests().len(), 1, "the model was asked once");
    harness.stop().await;
}
