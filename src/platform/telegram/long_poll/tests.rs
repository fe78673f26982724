//! Tests of reading getUpdates answers.

use serde_json::{Value, json};

use super::*;

fn message(update_id: i64, text: &str) -> Value {
    json!({ "update_id": update_id, "message": {
        "message_id": 5, "date": 1_700_000_000, "text": text,
        "chat": { "id": 42, "type": "private", "first_name": "Ann" },
        "from": { "id": 42, "is_bot": false, "first_name": "Ann" },
    }})
}

#[test]
fn an_ok_answer_gives_its_updates() {
    let text = json!({ "ok": true, "result": [message(7, "hi")] }).to_string();
    let updates = answer(200, &text).unwrap();
    assert_eq!(updates.len(), 1);
    let quiet = json!({ "ok": true, "result": [] }).to_string();
    let quiet = answer(200, &quiet).expect("a quiet poll is a success");
    assert!(quiet.is_empty());
}

#[test]
fn failures_say_what_the_server_did() {
    let flood = json!({ "ok": false, "error_code": 429,
        "description": "Too Many Requests: retry after 3", "parameters": { "retry_after": 3 } });
    let error = |status, text: &str| answer(status, text).map(|_| ()).unwrap_err();
    assert_eq!(
        error(429, &flood.to_string()),
        PollError::RetryAfter(Duration::from_secs(3))
    );
    let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    assert_eq!(error(502, page), PollError::Server(502));
    let conflict = json!({ "ok": false, "error_code": 409,
        "description": "Conflict: terminated by other getUpdates request" });
    let PollError::Refused(why) = error(409, &conflict.to_string()) else {
        panic!("a conflict is a refusal");
    };
    assert!(why.contains("409 Conflict"), "{why}");
    assert!(matches!(
        answer(200, "<html>"),
        Err(PollError::Unreadable(_))
    ));
}

fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}

#[test]
fn an_update_that_does_not_decode_is_kept_with_its_id_and_the_rest_decode() {
    let broken = json!({ "update_id": 8, "message": { "message_id": "not a number" } });
    let polled: Vec<Polled> = [message(7, "hi"), broken, message(9, "again")]
        .iter()
        .map(|value| decode(&raw(value)))
        .collect();
    let ids: Vec<_> = polled.iter().map(|p| p.id).collect();
    assert_eq!(ids, [Some(7), Some(8), Some(9)]);
    assert!(polled[0].update.is_ok(), "{:?}", polled[0].update);
    let why = polled[1].update.as_ref().unwrap_err();
    assert_eq!(why, "an update whose content does not decode");
    assert!(polled[2].update.is_ok());
    let no_id = decode(&raw(&json!({ "message": {} })));
    assert_eq!(no_id.id, None);
    assert!(no_id.update.is_err());
}

#[test]
fn an_update_nested_too_deep_for_the_decoder_does_not_fail_the_batch() {
    // serde_json refuses to decode values nested over 128 levels; teloxide then fails the whole
    // answer, and a poller that cannot read the batch never gets past it.
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let text = format!(
        r#"{{"ok":true,"result":[{},{{"update_id":8,"message":{{"x":{deep}}}}},{}]}}"#,
        message(7, "hi"),
        message(9, "again")
    );
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "too deep for a Value"
    );
    let updates = answer(200, &text).expect("the batch is read");
    let polled: Vec<Polled> = updates.iter().map(|raw| decode(raw)).collect();
    let ids: Vec<_> = polled.iter().map(|p| p.id).collect();
    assert_eq!(ids, [Some(7), Some(8), Some(9)]);
    assert!(polled[0].update.is_ok() && polled[2].update.is_ok());
    assert!(polled[1].update.is_err());
}

#[test]
fn the_token_in_the_url_never_reaches_an_error() {
    let poll = LongPoll::new("123:secret-token", "http://127.0.0.1:1");
    let poll = poll.expect("a valid URL");
    assert!(
        poll.url
            .as_str()
            .ends_with("/bot123:secret-token/getUpdates")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(poll.poll(0, Duration::ZERO))
        .expect_err("nothing listens on port 1");
    let text = format!("{error} {error:?}");
    assert!(matches!(error, PollError::Network(_)), "{text}");
    assert!(!text.contains("secret-token"), "{text}");
}
