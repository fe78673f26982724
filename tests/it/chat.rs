//! End to end: `parley chat` as a subprocess against the fake completion server and a real
//! SQLite file.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::fake_llm::{End, FAKE_KEY, FakeLlm, Script};
use crate::support::parley_command;

/// What one run of `parley chat` printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

struct Chat {
    fake: FakeLlm,
    _dir: tempfile::TempDir,
    db: PathBuf,
}

impl Chat {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("parley.db");
        Self {
            fake: FakeLlm::start().await,
            _dir: dir,
            db,
        }
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = parley_command(args, &self.fake, &self.db);
        cmd.env("PARLEY__LLM__RETRY__INITIAL_BACKOFF_MS", "10")
            .env("PARLEY__LLM__RETRY__MAX_BACKOFF_MS", "20");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    async fn run(&self, input: &str, env: &[(&str, &str)]) -> Run {
        self.run_args(&["chat"], input, env).await
    }

    async fn run_args(&self, args: &[&str], input: &str, env: &[(&str, &str)]) -> Run {
        let mut child = self.command(args, env).spawn().expect("start parley");
        let mut stdin = child.stdin.take().unwrap();
        // A process that refuses its config exits before reading: a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("parley chat finishes")
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn conversation_headers(&self) -> Vec<String> {
        self.fake
            .requests()
            .iter()
            .map(|r| r.header("x-conversation-id").unwrap_or("").to_string())
            .collect()
    }
}

#[tokio::test]
async fn chat_streams_a_reply_and_stores_the_conversation() {
    let chat = Chat::new().await;
    let run = chat.run("hello there\n", &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "echo: hello there\n");
    assert!(chat.db.exists(), "the database folder and file are created");
    let headers = chat.conversation_headers();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].len(), 36, "a UUID: {}", headers[0]);
    let request = &chat.fake.requests()[0];
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["model"], "grok-4-fast-non-reasoning");
}

#[tokio::test]
async fn a_second_run_continues_with_the_same_conversation_id_and_history() {
    let chat = Chat::new().await;
    chat.run("first question\n", &[]).await;
    let run = chat.run("second question\n", &[]).await;
    assert_eq!(run.stdout, "echo: second question\n", "{}", run.stderr);
    let headers = chat.conversation_headers();
    assert_eq!(headers[0], headers[1]);
    let requests = chat.fake.requests();
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        &contents[1..],
        ["first question", "echo: first question", "second question"]
    );
    let first =
        serde_json::to_string(&requests[0].body["messages"].as_array().unwrap()[..2]).unwrap();
    let second = serde_json::to_string(&messages[..2]).unwrap();
    assert_eq!(first, second, "the earlier turn is sent byte for byte");
}

#[tokio::test]
async fn reset_starts_a_new_conversation_id() {
    let chat = Chat::new().await;
    let run = chat.run("one\n/reset\ntwo\n", &[]).await;
    assert!(
        run.stdout.contains("Started a new conversation"),
        "{}",
        run.stdout
    );
    let headers = chat.conversation_headers();
    assert_eq!(headers.len(), 2);
    assert_ne!(headers[0], headers[1]);
    let second = &chat.fake.requests()[1].body["messages"];
    assert_eq!(
        second.as_array().unwrap().len(),
        2,
        "system prompt and the new message"
    );
}

#[tokio::test]
async fn commands_switch_the_model_and_set_the_system_prompt() {
    let chat = Chat::new().await;
    let run = chat
        .run(
            "/model grok-3\n/system answer in French\nhi\n/model\n/usage\n",
            &[],
        )
        .await;
    assert!(
        run.stdout.contains("Model for this chat: grok-3"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Model: grok-3"), "{}", run.stdout);
    assert!(run.stdout.contains("over 1 replies"), "{}", run.stdout);
    let request = &chat.fake.requests()[0].body;
    assert_eq!(request["model"], "grok-3");
    assert_eq!(request["messages"][0]["content"], "answer in French");
}

#[tokio::test]
async fn the_model_option_switches_the_chat_model() {
    let chat = Chat::new().await;
    let run = chat
        .run_args(&["chat", "--model", "grok-4"], "hi\n", &[])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(chat.fake.requests()[0].body["model"], "grok-4");
    let run = chat.run_args(&["chat", "--model", "gpt-9"], "", &[]).await;
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("grok-4-fast-reasoning"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_refused_api_key_is_explained() {
    let chat = Chat::new().await;
    let run = chat
        .run("hi\n", &[("PARLEY__LLM__API_KEY", "wrong-key-123")])
        .await;
    assert!(run.stdout.contains("invalid API key"), "{}", run.stdout);
    assert!(!run.stdout.contains("wrong-key-123") && !run.stderr.contains("wrong-key-123"));
    assert_eq!(run.code, Some(0), "the chat keeps running and ends cleanly");
}

#[tokio::test]
async fn a_rate_limit_says_when_to_try_again() {
    let chat = Chat::new().await;
    chat.fake
        .push(Script::rate_limited().header("retry-after", "7"));
    let run = chat
        .run("hi\n", &[("PARLEY__LLM__RETRY__MAX_RETRIES", "0")])
        .await;
    assert!(run.stdout.contains("try again in 7 s"), "{}", run.stdout);
}

#[tokio::test]
async fn an_unavailable_upstream_is_explained_after_retries() {
    let chat = Chat::new().await;
    for _ in 0..3 {
        chat.fake.push(Script::html(502));
    }
    let run = chat
        .run("hi\n", &[("PARLEY__LLM__RETRY__MAX_RETRIES", "2")])
        .await;
    assert!(
        run.stdout.contains("upstream unavailable"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("<html>"));
    assert_eq!(chat.fake.requests().len(), 3, "one try and two retries");
}

#[tokio::test]
async fn an_unknown_model_lists_the_valid_ones() {
    let chat = Chat::new().await;
    let env = [
        ("PARLEY__LLM__MODELS", "grok-4,grok-9"),
        ("PARLEY__LLM__DEFAULT_MODEL", "grok-9"),
    ];
    let run = chat.run("hi\n", &env).await;
    assert!(
        run.stdout
            .contains("Unknown model `grok-9` — valid ones: grok-4, grok-9"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_stream_cut_midway_keeps_the_text_and_says_so() {
    let chat = Chat::new().await;
    chat.fake
        .push(Script::reply("The first part of a long answer").end(End::NoFinish));
    let run = chat.run("hi\n/reset\n", &[]).await;
    assert!(
        run.stdout.contains("The first part of a long answer"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("⚠️ reply interrupted: upstream closed the stream"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn an_error_in_the_middle_of_the_stream_is_shown_after_the_partial_text() {
    let chat = Chat::new().await;
    chat.fake.push(
        Script::reply("Partial answer here").end(End::ErrorAfter(2, "backend overloaded".into())),
    );
    let run = chat.run("hi\n", &[]).await;
    assert!(run.stdout.starts_with("Partial "), "{}", run.stdout);
    assert!(
        run.stdout.contains("⚠️ reply interrupted"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_bad_config_stops_start_up_with_one_line_naming_the_key() {
    let chat = Chat::new().await;
    let run = chat
        .run("hi\n", &[("PARLEY__LLM__DEFAULT_MODEL", "gpt-9")])
        .await;
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("llm.default_model"), "{}", run.stderr);
    assert!(
        run.stderr.contains("PARLEY__LLM__DEFAULT_MODEL"),
        "{}",
        run.stderr
    );
    assert!(chat.fake.requests().is_empty());
}

#[tokio::test]
async fn check_validates_without_printing_secrets() {
    let chat = Chat::new().await;
    let env = [("PARLEY__TELEGRAM__TOKEN", "123456:telegram-secret")];
    let run = chat.run_args(&["check"], "", &env).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("telegram: would start"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("***"), "{}", run.stdout);
    let attachments = "attachments: images up to 10 MB for grok-4, grok-4-fast-non-reasoning, \
        grok-4-fast-reasoning; text files up to 256 KB";
    assert!(run.stdout.contains(attachments), "{}", run.stdout);
    for secret in [FAKE_KEY, "telegram-secret"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    let run = chat.run_args(&["check"], "", &[]).await;
    assert_ne!(run.code, Some(0), "nothing would start without a platform");
    assert!(
        run.stderr.contains("PARLEY__TELEGRAM__TOKEN"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_unknown_command_is_not_sent_to_the_model() {
    let chat = Chat::new().await;
    let run = chat.run("/frobnicate now\n", &[]).await;
    assert!(
        run.stdout.contains("Unknown command /frobnicate"),
        "{}",
        run.stdout
    );
    assert!(chat.fake.requests().is_empty());
}

#[tokio::test]
async fn attach_adds_a_file_to_the_next_message_only() {
    let chat = Chat::new().await;
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "# Plan\n- ship it\n").unwrap();
    let image = dir.path().join("shot.png");
    let png = crate::parts::png(21, 700);
    std::fs::write(&image, &png).unwrap();
    let input = format!(
        "/attach {}\n/attach {}\n/attach /no/such/file\nwhat now?\nand then?\n",
        notes.display(),
        image.display()
    );
    let run = chat.run(&input, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with(
            "Attached notes.md; it goes with your next message.\n\
         Attached shot.png; it goes with your next message.\n\
         cannot read /no/such/file: "
        ),
        "{}",
        run.stdout
    );
    let requests = chat.fake.requests();
    assert_eq!(requests.len(), 2);
    let first = crate::parts::last_message(&requests[0].body);
    let file = "notes.md:\n```\n# Plan\n- ship it\n```";
    assert_eq!(crate::parts::texts(&first), ["what now?", file]);
    let url = crate::parts::data_url("image/png", &png);
    assert_eq!(crate::parts::image_urls(&requests[0].body), [url.as_str()]);
    let second = crate::parts::last_message(&requests[1].body);
    assert_eq!(
        second["content"], "and then?",
        "only the next message takes them"
    );
    assert_eq!(crate::parts::image_urls(&requests[1].body), [url.as_str()]);
}

/// A long answer that takes about six seconds to stream.
fn long_answer() -> Script {
    let text: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    Script::reply(text.join(" "))
        .chunk_chars(6)
        .delay(Duration::from_millis(30))
}

impl Chat {
    /// Runs `parley chat`, asks for a long answer and, once some of it streamed, stops it by
    /// `stop` (typing `/stop`, or Ctrl-C); then asks `then` and ends the input.
    async fn stop_midway(&self, by_signal: bool, then: &str) -> Run {
        let mut child = self.command(&["chat"], &[]).spawn().expect("start parley");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a long story please\n").await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.fake.requests().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no request");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if by_signal {
            let pid = child.id().expect("running").to_string();
            let kill = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status();
            assert!(kill.expect("kill runs").success());
        } else {
            stdin.write_all(b"/stop\n").await.unwrap();
        }
        stdin.write_all(then.as_bytes()).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("parley chat finishes")
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Checks a stopped first reply: the marker shown, the stream dropped, the row partial.
    async fn assert_first_stopped(&self, run: &Run) {
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.starts_with("w0 w1"), "{}", run.stdout);
        assert!(run.stdout.contains("⏹ stopped"), "{}", run.stdout);
        assert!(!run.stdout.contains("w299"), "{}", run.stdout);
        assert_eq!(self.fake.streams_dropped(), 1);
        let rows = crate::support::stored_replies(&self.db).await;
        let (status, reason, _) = rows.first().cloned().expect("the reply row");
        assert_eq!(
            (status.as_str(), reason.as_deref()),
            ("partial", Some("stopped"))
        );
    }
}

#[tokio::test]
async fn typing_stop_during_a_reply_stops_it_and_the_chat_goes_on() {
    let chat = Chat::new().await;
    chat.fake.push(long_answer());
    let run = chat.stop_midway(false, "and now?\n").await;
    chat.assert_first_stopped(&run).await;
    assert!(run.stdout.contains("echo: and now?"), "{}", run.stdout);
}

#[tokio::test]
async fn ctrl_c_during_a_reply_stops_only_the_reply() {
    let chat = Chat::new().await;
    chat.fake.push(long_answer());
    let run = chat.stop_midway(true, "and now?\n").await;
    chat.assert_first_stopped(&run).await;
    assert!(run.stdout.contains("echo: and now?"), "{}", run.stdout);
}

#[tokio::test]
async fn regen_asks_again_with_the_same_request_and_continue_goes_on_after_a_cut() {
    let chat = Chat::new().await;
    chat.fake.push(Script::reply("First try."));
    chat.fake
        .push(Script::reply("Second try,").finish_reason("length"));
    chat.fake.push(Script::reply(" and its end."));
    let run = chat.run("a question\n/regen\n/continue\n", &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let requests = chat.fake.requests();
    assert_eq!(requests.len(), 3, "{}", run.stdout);
    assert_eq!(
        requests[1].raw, requests[0].raw,
        "/regen resends the same request"
    );
    assert!(run.stdout.contains("First try.") && run.stdout.contains("Second try,"));
    assert!(run.stdout.contains("and its end."), "{}", run.stdout);
    let rows = crate::support::stored_replies(&chat.db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, "Second try, and its end.");
    let kept = crate::support::stored_alternatives(&chat.db).await;
    assert_eq!(
        kept.into_iter().map(|(_, c)| c).collect::<Vec<_>>(),
        ["First try.", "Second try, and its end."],
        "the continued answer keeps its place in the set, whole"
    );
}

#[tokio::test]
async fn alt_shows_an_earlier_answer_and_the_next_turn_goes_on_from_it() {
    let chat = Chat::new().await;
    chat.fake.push(Script::reply("First try."));
    chat.fake.push(Script::reply("Second try."));
    let run = chat
        .run("a question\n/regen\n/alt 1\n/alt 7\nand then?\n", &[])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("answers 1 to 2"), "{}", run.stdout);
    let requests = chat.fake.requests();
    assert_eq!(requests.len(), 3, "{}", run.stdout);
    let messages = requests[2].body["messages"].as_array().cloned().unwrap();
    let answer = &messages[messages.len() - 2];
    assert_eq!(answer["content"], "First try.", "{messages:?}");
}
