//! The completion client against the fake completion server: streams, errors, retries, params.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use parley::engine::event::ConversationId;
use parley::engine::ports::{
    ChatMessage, CompletionRequest, Model, ModelError, ModelName, Role, StreamEvent, TimeoutKind,
    TokenStream, Usage,
};
use parley::llm::{
    ClientConfig, ModelOverride, OpenAiClient, ParamName, Params, RetryPolicy, Timeouts,
};
use secrecy::SecretString;

use crate::fake_llm::{End, FAKE_KEY, FakeLlm, Script};

type Events = Vec<Result<StreamEvent, ModelError>>;

fn config(fake: &FakeLlm) -> ClientConfig {
    ClientConfig {
        base_url: fake.base_url(),
        api_key: SecretString::from(FAKE_KEY),
        conversation_header: "X-Conversation-Id".into(),
        stream: true,
        params: Params::default(),
        overrides: HashMap::new(),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(5),
            idle: Duration::from_secs(2),
            total: Duration::from_secs(20),
        },
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
    }
}

fn client(config: ClientConfig) -> OpenAiClient {
    OpenAiClient::new(config).expect("a valid config")
}

fn request(model: &str, prompt: &str) -> CompletionRequest {
    CompletionRequest {
        conversation: ConversationId::random(),
        model: ModelName::new(model),
        messages: vec![
            ChatMessage::text(Role::System, "Be brief."),
            ChatMessage::text(Role::User, prompt),
        ],
        n: None,
    }
}

async fn collect(stream: TokenStream) -> Events {
    stream.collect().await
}

async fn run(fake: &FakeLlm, script: Script) -> Events {
    fake.push(script);
    let stream = client(config(fake))
        .complete(request("grok-3", "hi"))
        .await
        .expect("a stream");
    collect(stream).await
}

async fn refused(fake: &FakeLlm, script: Script) -> ModelError {
    fake.push(script);
    let result = client(config(fake)).complete(request("grok-3", "hi")).await;
    result.expect_err("an error")
}

fn content(events: &Events) -> String {
    let texts = events.iter().filter_map(|e| match e {
        Ok(StreamEvent::Content(text)) => Some(text.as_str()),
        _ => None,
    });
    texts.collect()
}

fn finished(events: &Events) -> Option<&str> {
    events.iter().find_map(|e| match e {
        Ok(StreamEvent::Finished(reason)) => Some(reason.as_str()),
        _ => None,
    })
}

#[tokio::test]
async fn the_default_script_streams_an_echo_with_finish_and_usage() {
    let fake = FakeLlm::start().await;
    let stream = client(config(&fake))
        .complete(request("grok-3", "hello there"))
        .await
        .unwrap();
    let events = collect(stream).await;
    assert_eq!(content(&events), "echo: hello there");
    assert_eq!(finished(&events), Some("stop"));
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Usage(u))) if u.prompt_tokens > 0));
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, Ok(StreamEvent::Content(_))))
            .count()
            > 2
    );
}

#[tokio::test]
async fn requests_carry_the_key_the_conversation_header_and_stream_options() {
    let fake = FakeLlm::start().await;
    let request = request("grok-3", "hi");
    let id = request.conversation.to_string();
    let _ = client(config(&fake)).complete(request).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.header("x-conversation-id"), Some(id.as_str()));
    assert_eq!(sent.header("authorization"), Some("Bearer test-key"));
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.body["messages"][1]["content"], "hi");
}

#[tokio::test]
async fn a_base_url_with_a_trailing_slash_works_too() {
    let fake = FakeLlm::start().await;
    let mut config = config(&fake);
    config.base_url.push('/');
    assert!(
        client(config)
            .complete(request("grok-3", "x"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unset_params_are_not_sent_and_set_ones_are() {
    let fake = FakeLlm::start().await;
    let mut config = config(&fake);
    config.params.temperature = Some(0.5);
    config.params.max_tokens = Some(64);
    let _ = client(config)
        .complete(request("grok-3", "x"))
        .await
        .unwrap();
    let body = fake.requests()[0].body.as_object().cloned().unwrap();
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["max_tokens"], 64);
    for absent in [
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
    ] {
        assert!(!body.contains_key(absent), "{absent} was sent");
    }
}

fn penalised(fake: &FakeLlm) -> ClientConfig {
    let mut config = config(fake);
    config.params.presence_penalty = Some(0.0);
    config.params.frequency_penalty = Some(0.0);
    config.params.stop = Some(vec!["END".into()]);
    config
}

#[tokio::test]
async fn reasoning_models_refuse_penalties_without_an_override() {
    let fake = FakeLlm::start().await;
    let error = client(penalised(&fake))
        .complete(request("grok-4", "x"))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ModelError::BadRequest(m) if m.contains("does not support")));
}

#[tokio::test]
async fn overrides_strip_params_for_grok_4() {
    let fake = FakeLlm::start().await;
    let mut config = penalised(&fake);
    let remove = vec![
        ParamName::PresencePenalty,
        ParamName::FrequencyPenalty,
        ParamName::Stop,
    ];
    let over = ModelOverride {
        remove,
        ..ModelOverride::default()
    };
    config.overrides.insert("grok-4".into(), over);
    let client = client(config);
    client
        .complete(request("grok-4", "x"))
        .await
        .expect("grok-4 is asked without the removed parameters");
    client
        .complete(request("grok-3", "x"))
        .await
        .expect("grok-3 is asked with them");
    let sent = fake.requests();
    assert!(sent[0].body.get("presence_penalty").is_none());
    assert_eq!(sent[1].body["stop"][0], "END");
}

#[tokio::test]
async fn equal_requests_are_sent_as_equal_bytes_and_turns_extend_the_prefix() {
    let fake = FakeLlm::start().await;
    let client = client(config(&fake));
    let first = request("grok-3", "one");
    let mut second = first.clone();
    second
        .messages
        .push(ChatMessage::text(Role::Assistant, "echo: one"));
    for request in [first.clone(), first, second] {
        let _ = client.complete(request).await.unwrap();
    }
    let sent = fake.requests();
    assert_eq!(sent[0].raw, sent[1].raw);
    let cut = sent[0].raw.windows(2).position(|w| w == b"}]").unwrap() + 1;
    assert_eq!(sent[0].raw[..cut], sent[2].raw[..cut]);
}

#[tokio::test]
async fn pings_crlf_and_multiline_data_are_decoded() {
    let fake = FakeLlm::start().await;
    let events = run(
        &fake,
        Script::reply("line one\nline two")
            .pings()
            .crlf()
            .multiline_data(),
    )
    .await;
    assert_eq!(content(&events), "line one\nline two");
    assert_eq!(finished(&events), Some("stop"));
}

#[tokio::test(start_paused = true)]
async fn reads_split_inside_events_and_utf8_characters_are_decoded() {
    let fake = FakeLlm::start().await;
    let text = "naïve 😀 café";
    let cuts: Vec<usize> = (1..80).map(|i| i * 7).collect();
    let script = Script::reply(text).chunk_chars(3).split_at(&cuts);
    let events = run(&fake, script.delay(Duration::from_millis(5))).await;
    assert_eq!(content(&events), text);
}

#[tokio::test]
async fn reasoning_and_empty_deltas_are_thinking_never_content() {
    let fake = FakeLlm::start().await;
    let script = Script::reply("42")
        .thinking(&["let me ", "think"])
        .empty_deltas(2);
    let events = run(&fake, script).await;
    let thinking: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Thinking(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, ["let me ", "think", "", ""]);
    assert_eq!(content(&events), "42");
}

#[tokio::test]
async fn usage_reports_cached_and_reasoning_tokens() {
    let fake = FakeLlm::start().await;
    let events = run(
        &fake,
        Script::reply("ok").cached_tokens(7).reasoning_tokens(3),
    )
    .await;
    let usage = events.iter().find_map(|e| match e {
        Ok(StreamEvent::Usage(u)) => Some(*u),
        _ => None,
    });
    let usage: Usage = usage.expect("a usage event");
    assert_eq!((usage.cached_tokens, usage.reasoning_tokens), (7, 3));
}

#[tokio::test]
async fn any_finish_reason_is_passed_on() {
    let fake = FakeLlm::start().await;
    let events = run(&fake, Script::reply("cut").finish_reason("length")).await;
    assert_eq!(finished(&events), Some("length"));
}

#[tokio::test]
async fn an_error_object_mid_stream_ends_it_with_an_upstream_error() {
    let fake = FakeLlm::start().await;
    let script = Script::reply("abcdefgh").end(End::ErrorAfter(1, "overloaded".into()));
    let events = run(&fake, script).await;
    assert_eq!(content(&events), "abcd");
    assert_eq!(
        events.last(),
        Some(&Err(ModelError::Upstream("overloaded".into())))
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "no retry once the stream is handed out"
    );
}

#[tokio::test]
async fn a_finished_stream_without_done_is_fine() {
    let fake = FakeLlm::start().await;
    let events = run(&fake, Script::reply("fine").end(End::NoDone)).await;
    assert!(events.iter().all(Result::is_ok));
    assert_eq!(finished(&events), Some("stop"));
}

#[tokio::test]
async fn a_stream_without_finish_reason_is_incomplete() {
    let fake = FakeLlm::start().await;
    let events = run(&fake, Script::reply("half a rep").end(End::NoFinish)).await;
    assert_eq!(content(&events), "half a rep");
    assert_eq!(events.last(), Some(&Err(ModelError::Incomplete)));
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_incomplete() {
    let fake = FakeLlm::start().await;
    let events = run(
        &fake,
        Script::reply("abcdefgh")
            .delay(Duration::from_millis(20))
            .end(End::AbortAfter(1)),
    )
    .await;
    assert_eq!(events.last(), Some(&Err(ModelError::Incomplete)));
}

#[tokio::test(start_paused = true)]
async fn a_stall_after_tokens_times_out_as_idle() {
    let fake = FakeLlm::start().await;
    let events = run(&fake, Script::reply("abcdefgh").end(End::StallAfter(1))).await;
    assert_eq!(content(&events), "abcd");
    assert_eq!(
        events.last(),
        Some(&Err(ModelError::Timeout(TimeoutKind::Idle)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_longer_than_the_total_timeout_is_cut() {
    let fake = FakeLlm::start().await;
    let script = Script::reply("x".repeat(80)).delay(Duration::from_millis(1500));
    let events = run(&fake, script).await;
    assert_eq!(
        events.last(),
        Some(&Err(ModelError::Timeout(TimeoutKind::Total)))
    );
}

#[tokio::test]
async fn the_non_streaming_path_yields_content_usage_and_finish() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply("whole answer").finish_reason("stop"));
    let mut config = config(&fake);
    config.stream = false;
    let stream = client(config)
        .complete(request("grok-3", "x"))
        .await
        .unwrap();
    let events = collect(stream).await;
    assert_eq!(events[0], Ok(StreamEvent::Content("whole answer".into())));
    assert!(matches!(events[1], Ok(StreamEvent::Usage(_))));
    assert_eq!(events[2], Ok(StreamEvent::Finished("stop".into())));
    assert_eq!(fake.requests()[0].body["stream"], false);
    assert!(fake.requests()[0].body.get("stream_options").is_none());
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized() {
    let fake = FakeLlm::start_with_key("the-right-key").await;
    let error = client(config(&fake)).complete(request("grok-3", "x")).await;
    assert_eq!(error.err(), Some(ModelError::Unauthorized));
}

#[tokio::test]
async fn an_unknown_model_is_named() {
    let fake = FakeLlm::start().await;
    let error = client(config(&fake)).complete(request("grok-9", "x")).await;
    assert_eq!(error.err(), Some(ModelError::UnknownModel("grok-9".into())));
}

#[tokio::test]
async fn an_xai_model_not_found_body_is_an_unknown_model() {
    let fake = FakeLlm::start().await;
    let script = Script::xai_error(
        400,
        "Client specified an invalid argument",
        "Model not found: grok-3",
    );
    assert_eq!(
        refused(&fake, script).await,
        ModelError::UnknownModel("grok-3".into())
    );
}

#[tokio::test]
async fn an_xai_error_body_gives_its_message() {
    let fake = FakeLlm::start().await;
    let script = Script::xai_error(
        400,
        "Client specified an invalid argument",
        "bad temperature",
    );
    assert_eq!(
        refused(&fake, script).await,
        ModelError::BadRequest("bad temperature".into())
    );
}

#[tokio::test]
async fn an_openai_error_body_gives_its_message() {
    let fake = FakeLlm::start().await;
    let script = Script::openai_error(400, "messages too long", "invalid_request_error", "x");
    assert_eq!(
        refused(&fake, script).await,
        ModelError::BadRequest("messages too long".into())
    );
}

#[tokio::test]
async fn an_html_502_is_unavailable_without_the_html() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Script::html(502));
    }
    let error = refused(&fake, Script::html(502)).await;
    assert_eq!(error, ModelError::Unavailable("HTTP 502".into()));
    assert_eq!(fake.requests().len(), 3, "retried twice, then gave up");
}

#[tokio::test]
async fn a_retryable_failure_is_retried_until_success() {
    let fake = FakeLlm::start().await;
    fake.push(Script::openai_error(503, "busy", "server_error", "busy"));
    fake.push(Script::rate_limited().header("retry-after-ms", "10"));
    let stream = client(config(&fake))
        .complete(request("grok-3", "again"))
        .await
        .unwrap();
    assert_eq!(content(&collect(stream).await), "echo: again");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_retrying() {
    let fake = FakeLlm::start().await;
    fake.push(Script::rate_limited().header("retry-after", "3"));
    let started = tokio::time::Instant::now();
    let result = client(config(&fake)).complete(request("grok-3", "x")).await;
    result.expect("the retry after the wait is answered");
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_rate_limit_still_refused_after_the_retries_reports_its_wait() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Script::rate_limited().header("retry-after-ms", "5"));
    }
    let error = client(config(&fake))
        .complete(request("grok-3", "x"))
        .await
        .err();
    let retry_after = Some(Duration::from_millis(5));
    assert_eq!(error, Some(ModelError::RateLimited { retry_after }));
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_is_not_waited_for() {
    let fake = FakeLlm::start().await;
    let error = refused(&fake, Script::rate_limited().header("retry-after", "120")).await;
    let retry_after = Some(Duration::from_secs(120));
    assert_eq!(error, ModelError::RateLimited { retry_after });
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_unavailable() {
    let fake = FakeLlm::start().await;
    let mut config = config(&fake);
    config.base_url = "http://127.0.0.1:9/v1".into();
    let error = client(config).complete(request("grok-3", "x")).await.err();
    assert!(
        matches!(error, Some(ModelError::Unavailable(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn debug_output_hides_the_key() {
    let fake = FakeLlm::start().await;
    let config = config(&fake);
    let shown = format!("{config:?} {:?}", client(config.clone()));
    assert!(!shown.contains(FAKE_KEY), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn no_token_within_the_first_token_timeout_times_out() {
    let fake = FakeLlm::start().await;
    let script = Script::reply("late").end(End::StallAfter(0));
    fake.push(script);
    let result = client(config(&fake)).complete(request("grok-3", "x")).await;
    let error = match result {
        Ok(stream) => collect(stream).await.pop().and_then(Result::err),
        Err(error) => Some(error),
    };
    assert_eq!(error, Some(ModelError::Timeout(TimeoutKind::FirstToken)));
}

#[tokio::test]
async fn the_fake_refuses_a_body_without_model_or_messages() {
    let fake = FakeLlm::start().await;
    let url = format!("{}/chat/completions", fake.base_url());
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(FAKE_KEY)
        .json(&serde_json::json!({ "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("model"));
}

/// The receive low-water marks (`SO_RCVLOWAT`) of this process's sockets connected to `peer`.
#[cfg(target_os = "linux")]
fn low_water_marks(peer: std::net::SocketAddr) -> Vec<i32> {
    use std::os::fd::BorrowedFd;
    let fds = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    let fds = fds.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok());
    fds.filter_map(|fd| {
        // SAFETY: borrowed only for the two calls below; a descriptor closed meanwhile makes
        // them fail.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        (socket.peer_addr().ok()?.as_socket()? == peer).then_some(())?;
        let mut mark: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `mark`.
        let done = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut mark).cast(),
                &mut len,
            )
        };
        (done == 0).then_some(mark)
    })
    .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_held_stream_keeps_its_socket_quiet_and_hands_over_everything_when_read() {
    let fake = FakeLlm::start().await;
    let text = "a reply that arrives while nobody reads it";
    let script = || Script::reply(text).delay(Duration::from_millis(5));
    fake.push(script());
    fake.push(script());
    let client = client(config(&fake));
    let mut stream = client
        .complete(request("grok-3", "hi"))
        .await
        .expect("a stream");
    assert_eq!(low_water_marks(fake.addr()), [1]);
    stream.hold();
    // The kernel keeps what arrives to itself until 32 KB are there.
    assert_eq!(low_water_marks(fake.addr()), [32 * 1024]);
    // The whole reply and its end arrive while held: far less than the mark.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Reading ends the hold, and lowering the mark announces what came: everything is read at
    // once, not after a stall (the idle timeout is 2 s).
    let events = tokio::time::timeout(Duration::from_secs(1), collect(stream))
        .await
        .expect("the held data is handed over when read");
    assert_eq!(content(&events), text);
    assert_eq!(finished(&events), Some("stop"));
    assert_eq!(low_water_marks(fake.addr()), [1]);
    // The connection goes back to the pool announcing data as usual.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stream = client
        .complete(request("grok-3", "hi"))
        .await
        .expect("a stream");
    assert_eq!(low_water_marks(fake.addr()), [1]);
    let events = tokio::time::timeout(Duration::from_secs(1), collect(stream))
        .await
        .expect("the next reply streams");
    assert_eq!(content(&events), text);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_pooled_connection_held_by_an_ended_stream_answers_the_next_request_at_once() {
    let fake = FakeLlm::start().await;
    let text = "first answer";
    fake.push(Script::reply(text));
    fake.push(Script::reply("second answer"));
    let client = client(config(&fake));
    let mut first = client
        .complete(request("grok-3", "hi"))
        .await
        .expect("a stream");
    let mut events = Vec::new();
    while let Some(event) = first.next().await {
        events.push(event);
    }
    assert_eq!(content(&events), text);
    // A reader that holds a stream after its end: hyper puts the connection back in its pool
    // (in well under a millisecond; the wait leaves room for a loaded machine), quiet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.hold();
    assert_eq!(low_water_marks(fake.addr()), [32 * 1024]);
    // The next request takes that connection; writing it ends the stale hold, so its answer is
    // announced (a quiet socket would leave it unread until the first-token timeout, 5 s).
    let second = tokio::time::timeout(
        Duration::from_secs(1),
        client.complete(request("grok-3", "again")),
    )
    .await
    .expect("the answer on the pooled connection is heard")
    .expect("a stream");
    assert_eq!(low_water_marks(fake.addr()), [1]);
    let events = tokio::time::timeout(Duration::from_secs(1), collect(second))
        .await
        .expect("the second reply streams");
    assert_eq!(content(&events), "second answer");
    drop(first);
}

/// A one-purpose HTTP proxy on 127.0.0.1: answers each `CONNECT` with 200 and relays the
/// tunnel to `target`, whatever host it names; notes each request line and its
/// `Proxy-Authorization`.
async fn connect_proxy(
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut inbound = BufReader::new(inbound);
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if inbound.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_string());
                }
                let connect = head.first().is_some_and(|l| l.starts_with("CONNECT "));
                log.lock().unwrap().extend(head);
                if !connect {
                    let refusal = b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n";
                    let _ = inbound.get_mut().write_all(refusal).await;
                    return;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
                if inbound.get_mut().write_all(established).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (address, seen)
}

#[tokio::test]
async fn a_proxied_api_is_reached_through_a_connect_tunnel_with_the_proxy_s_credentials() {
    use hyper_util::client::proxy::matcher::Matcher;
    let fake = FakeLlm::start().await;
    let (proxy, seen) = connect_proxy(fake.addr()).await;
    let proxies = Matcher::builder()
        .all(format!("http://user:secret@{proxy}"))
        .build();
    let port = fake.addr().port();
    let mut config = config(&fake);
    // A name only the proxy knows how to reach.
    config.base_url = format!("http://llm.invalid:{port}/v1");
    let client = OpenAiClient::with_proxies(config, &proxies).expect("a valid config");
    let stream = client
        .complete(request("grok-3", "through the proxy"))
        .await
        .expect("a stream");
    let events = collect(stream).await;
    assert_eq!(content(&events), "echo: through the proxy");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        format!("CONNECT llm.invalid:{port} HTTP/1.1"),
        "{seen:?}"
    );
    // user:secret, base64.
    assert!(
        seen.contains(&"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=".to_string()),
        "{seen:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_host_in_no_proxy_is_reached_directly() {
    use hyper_util::client::proxy::matcher::Matcher;
    let fake = FakeLlm::start().await;
    let (proxy, seen) = connect_proxy(fake.addr()).await;
    let proxies = Matcher::builder()
        .all(format!("http://{proxy}"))
        .no("127.0.0.1")
        .build();
    let client = OpenAiClient::with_proxies(config(&fake), &proxies).expect("a valid config");
    let stream = client
        .complete(request("grok-3", "straight"))
        .await
        .expect("a stream");
    assert_eq!(content(&collect(stream).await), "echo: straight");
    assert!(seen.lock().unwrap().is_empty());
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_connection_that_is_never_accepted_times_out_as_a_connect_timeout() {
    // A listener that never accepts, its queue filled: Linux then drops new connection attempts
    // (the SYN), so a connect neither succeeds nor fails until its timeout.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let attempt = tokio::net::TcpStream::connect(address);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(100), attempt).await {
            fillers.push(stream);
        }
    }
    let fake = FakeLlm::start().await;
    let mut config = config(&fake);
    config.base_url = format!("http://{address}/v1");
    config.timeouts.connect = Duration::from_millis(200);
    let error = client(config)
        .complete(request("grok-3", "hi"))
        .await
        .expect_err("no connection");
    assert_eq!(error, ModelError::Timeout(TimeoutKind::Connect));
    drop(fillers);
}

#[tokio::test]
async fn the_fake_closes_an_idle_connection_and_the_client_asks_again_on_a_new_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idle = Duration::from_millis(200);
    let fake = FakeLlm::start_closing_idle(idle).await;
    // The fake keeps a connection open between requests, then closes it once idle.
    let mut tcp = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let body = r#"{"model":"grok-3","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {FAKE_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("0\r\n\r\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answer ended");
        seen.extend_from_slice(&buf[..n]);
    }
    let opened = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert_eq!(
        closed.expect("closed within 5 s").unwrap(),
        0,
        "an orderly close"
    );
    assert!(opened.elapsed() >= idle, "kept open while idle");
    // The client's pooled connection is gone by the next request: it connects again.
    let client = client(config(&fake));
    for prompt in ["one", "two"] {
        let stream = client.complete(request("grok-3", prompt)).await.unwrap();
        assert_eq!(content(&collect(stream).await), format!("echo: {prompt}"));
        tokio::time::sleep(idle * 3).await;
    }
    assert_eq!(fake.requests().len(), 3, "no request was retried");
}
