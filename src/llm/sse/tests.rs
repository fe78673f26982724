//! Unit tests of the SSE decoder over byte reads split exactly where the tests choose.

use std::convert::Infallible;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use tokio::time::Instant;

use super::decode;
use crate::engine::ports::{ModelError, StreamEvent, TimeoutKind, Usage};
use crate::llm::Timeouts;

fn content(text: &str) -> String {
    format!(r#"data: {{"choices":[{{"index":0,"delta":{{"content":{text:?}}}}}]}}"#)
}

const FINISH: &str = r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

async fn run(reads: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, ModelError>> {
    let bytes = stream::iter(reads.into_iter().map(Ok::<_, Infallible>));
    decode(bytes, Timeouts::default(), Instant::now())
        .collect()
        .await
}

fn split(body: &str, at: &[usize]) -> Vec<Vec<u8>> {
    let bytes = body.as_bytes();
    let mut cuts = vec![0];
    cuts.extend_from_slice(at);
    cuts.push(bytes.len());
    cuts.windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

#[tokio::test]
async fn a_read_split_inside_a_utf8_character_decodes_whole() {
    let body = format!("{}\n\n{FINISH}\n\ndata: [DONE]\n\n", content("héé😀"));
    let emoji = body.find('😀').unwrap();
    let events = run(split(&body, &[emoji + 2, emoji + 3, body.len() - 3])).await;
    assert_eq!(
        events,
        vec![
            Ok(StreamEvent::Content("héé😀".into())),
            Ok(StreamEvent::Finished("stop".into()))
        ]
    );
}

#[tokio::test]
async fn crlf_lines_pings_and_multiline_data_are_understood() {
    let multi = "data: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"b\"}}]}";
    let body = format!(
        ": ping\r\n\r\n{}\r\n\r\n{multi}\r\n\r\n{FINISH}\r\n\r\ndata: [DONE]\r\n\r\n",
        content("a")
    );
    let cr = body.find("\r\n").unwrap();
    let events = run(split(&body, &[cr + 1, 20, 60])).await;
    let texts: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        texts,
        vec![
            StreamEvent::Content("a".into()),
            StreamEvent::Content("b".into()),
            StreamEvent::Finished("stop".into())
        ]
    );
}

#[tokio::test]
async fn usage_arrives_from_a_chunk_without_choices() {
    let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
    let body = format!("{FINISH}\n\n{usage}\n\ndata: [DONE]\n\n");
    let events = run(split(&body, &[])).await;
    let expected = Usage {
        prompt_tokens: 9,
        completion_tokens: 4,
        cached_tokens: 6,
        reasoning_tokens: 2,
    };
    assert_eq!(events.last(), Some(&Ok(StreamEvent::Usage(expected))));
}

#[tokio::test]
async fn a_stream_closed_before_a_finish_reason_is_incomplete() {
    let body = format!("{}\n\n", content("half"));
    let events = run(split(&body, &[])).await;
    assert_eq!(events.last(), Some(&Err(ModelError::Incomplete)));
}

#[tokio::test]
async fn done_without_a_finish_reason_is_incomplete() {
    let body = format!("{}\n\ndata: [DONE]\n\n", content("half"));
    let events = run(split(&body, &[])).await;
    assert_eq!(events.last(), Some(&Err(ModelError::Incomplete)));
}

#[tokio::test(start_paused = true)]
async fn nothing_within_the_first_token_timeout_times_out() {
    let timeouts = Timeouts {
        first_token: Duration::from_secs(5),
        ..Timeouts::default()
    };
    let bytes = stream::pending::<Result<Vec<u8>, Infallible>>();
    let events: Vec<_> = decode(bytes, timeouts, Instant::now()).collect().await;
    assert_eq!(
        events,
        vec![Err(ModelError::Timeout(TimeoutKind::FirstToken))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_left_unread_longer_than_the_idle_timeout_is_not_idle() {
    let timeouts = Timeouts {
        idle: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let body = [content("a"), content("b"), content("c"), FINISH.into()]
        .map(|line| format!("{line}\n\n").into_bytes());
    // Each read takes a moment to be handed over once asked for, as a connection task's does.
    let bytes = stream::iter(body).then(|read| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, Infallible>(read)
    });
    let mut events = decode(bytes, timeouts, Instant::now());
    let first = events.next().await;
    assert_eq!(first, Some(Ok(StreamEvent::Content("a".into()))));
    // The reader holds the stream for three idle timeouts (a preview waits for its slot).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rest: Vec<_> = events.collect().await;
    assert_eq!(
        rest,
        vec![
            Ok(StreamEvent::Content("b".into())),
            Ok(StreamEvent::Content("c".into())),
            Ok(StreamEvent::Finished("stop".into())),
        ]
    );
}

#[tokio::test]
async fn choices_past_the_first_arrive_as_other_events_by_index() {
    let other = |index: u32, text: &str| {
        format!(r#"data: {{"choices":[{{"index":{index},"delta":{{"content":{text:?}}}}}]}}"#)
    };
    let done = |index: u32| {
        format!(
            r#"data: {{"choices":[{{"index":{index},"delta":{{}},"finish_reason":"length"}}]}}"#
        )
    };
    let body = [
        content("A"),
        other(1, "B"),
        other(2, "C"),
        content("a"),
        other(1, "b"),
    ]
    .into_iter()
    .chain([FINISH.to_string(), done(1), done(2), "data: [DONE]".into()])
    .map(|event| event + "\n\n")
    .collect::<String>();
    let events: Vec<StreamEvent> = run(vec![body.into_bytes()])
        .await
        .into_iter()
        .flatten()
        .collect();
    let other = |index, text: &str| StreamEvent::Other {
        index,
        text: text.into(),
    };
    let finished = |index| StreamEvent::OtherFinished {
        index,
        reason: "length".into(),
    };
    assert_eq!(
        events,
        [
            StreamEvent::Content("A".into()),
            other(1, "B"),
            other(2, "C"),
            StreamEvent::Content("a".into()),
            other(1, "b"),
            StreamEvent::Finished("stop".into()),
            finished(1),
            finished(2),
        ]
    );
}
