//! Renders a [`Script`] into the bytes the fake sends: SSE reads or a whole JSON completion.

use serde_json::{Value, json};

use super::script::{End, Script};

/// One step of a streamed body.
#[derive(Debug, Clone)]
pub(super) enum Read {
    /// Bytes written as one read.
    Bytes(Vec<u8>),
    /// Stop sending and keep the connection open.
    Stall,
    /// Cut the connection.
    Abort,
}

/// Token counts the fake reports, and how many choices the request asked for.
pub(super) struct Counts {
    pub prompt: u64,
    pub include_usage: bool,
    pub n: usize,
}

/// The texts of choices 1..n, in pieces of the script's chunk size.
fn other_pieces(script: &Script, n: usize) -> Vec<Vec<String>> {
    (1..n)
        .map(|i| {
            let text = script.others.get(i - 1).cloned();
            let text = text.unwrap_or_else(|| format!("{} (choice {i})", script.text));
            let chars: Vec<char> = text.chars().collect();
            let pieces = chars.chunks(script.chunk_chars.max(1));
            pieces.map(|c| c.iter().collect()).collect()
        })
        .collect()
}

fn chunk(model: &str, choices: Value) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "system_fingerprint": "fp_fake", "choices": choices
    })
}

fn usage(script: &Script, prompt: u64) -> Value {
    let completion = script.text.chars().count() as u64 / 4 + 1 + script.reasoning_tokens;
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": script.cached_tokens, "text_tokens": prompt },
        "completion_tokens_details": { "reasoning_tokens": script.reasoning_tokens }
    })
}

fn pieces(script: &Script) -> Vec<String> {
    let chars: Vec<char> = script.text.chars().collect();
    chars
        .chunks(script.chunk_chars)
        .map(|c| c.iter().collect())
        .collect()
}

/// The deltas before the finish: thinking, empty ones, then content; and the content count.
fn deltas(script: &Script) -> Vec<Value> {
    let thinking = script
        .thinking
        .iter()
        .map(|t| json!({ "reasoning_content": t }));
    let empty = (0..script.empty_deltas).map(|_| json!({}));
    let content = pieces(script).into_iter().map(|p| json!({ "content": p }));
    let mut all: Vec<Value> = thinking.chain(empty).chain(content).collect();
    match all.first_mut() {
        Some(first) => first["role"] = json!("assistant"),
        None => all.push(json!({ "role": "assistant", "content": "" })),
    }
    all
}

fn event(script: &Script, data: &str) -> String {
    let mut text = String::new();
    if script.pings {
        text.push_str(": ping\n\n");
    }
    for line in data.lines() {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    if script.crlf {
        text = text.replace('\n', "\r\n");
    }
    text
}

fn json_event(script: &Script, value: &Value) -> String {
    let data = if script.multiline {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    event(script, &data.unwrap_or_default())
}

/// The events of a streamed reply, and what follows the last one.
fn events(script: &Script, model: &str, counts: &Counts) -> (Vec<String>, Option<Read>) {
    let mut out = Vec::new();
    let thinking = script.thinking.len() + script.empty_deltas;
    let others = other_pieces(script, counts.n);
    for (i, delta) in deltas(script).into_iter().enumerate() {
        let sent = i.saturating_sub(thinking);
        match &script.end {
            End::ErrorAfter(n, message) if sent == *n && i >= thinking => {
                let error = json!({ "error": { "message": message, "type": "server_error" } });
                out.push(json_event(script, &error));
                return (out, None);
            }
            End::StallAfter(n) if sent == *n && i >= thinking => return (out, Some(Read::Stall)),
            End::AbortAfter(n) if sent == *n && i >= thinking => return (out, Some(Read::Abort)),
            _ => {}
        }
        let choices = json!([{ "index": 0, "delta": delta }]);
        out.push(json_event(script, &chunk(model, choices)));
        // The other choices interleave: their piece `sent` follows choice 0's.
        for (j, pieces) in others.iter().enumerate() {
            if let Some(piece) = pieces.get(sent).filter(|_| i >= thinking) {
                let choices = json!([{ "index": j + 1, "delta": { "content": piece } }]);
                out.push(json_event(script, &chunk(model, choices)));
            }
        }
    }
    // Choices longer than choice 0 send the rest after it.
    let first_len = deltas(script).len().saturating_sub(thinking);
    for (j, pieces) in others.iter().enumerate() {
        for piece in pieces.iter().skip(first_len) {
            let choices = json!([{ "index": j + 1, "delta": { "content": piece } }]);
            out.push(json_event(script, &chunk(model, choices)));
        }
    }
    match &script.end {
        End::NoFinish => return (out, None),
        End::ErrorAfter(_, message) => {
            let error = json!({ "error": { "message": message, "type": "server_error" } });
            out.push(json_event(script, &error));
            return (out, None);
        }
        End::StallAfter(_) => return (out, Some(Read::Stall)),
        End::AbortAfter(_) => return (out, Some(Read::Abort)),
        End::Done | End::NoDone => {}
    }
    for index in 0..counts.n.max(1) {
        let finish =
            json!([{ "index": index, "delta": {}, "finish_reason": script.finish_reason }]);
        out.push(json_event(script, &chunk(model, finish)));
    }
    if counts.include_usage {
        let mut last = chunk(model, json!([]));
        last["usage"] = usage(script, counts.prompt);
        out.push(json_event(script, &last));
    }
    if script.end == End::Done {
        out.push(event(script, "[DONE]"));
    }
    (out, None)
}

/// The reads of a streamed reply.
pub(super) fn stream(script: &Script, model: &str, counts: &Counts) -> Vec<Read> {
    let (events, tail) = events(script, model, counts);
    let mut reads: Vec<Read> = if script.split_at.is_empty() {
        events
            .into_iter()
            .map(|e| Read::Bytes(e.into_bytes()))
            .collect()
    } else {
        split(events.concat().into_bytes(), &script.split_at)
    };
    reads.extend(tail);
    reads
}

fn split(body: Vec<u8>, offsets: &[usize]) -> Vec<Read> {
    let mut cuts: Vec<usize> = offsets
        .iter()
        .copied()
        .filter(|&o| o < body.len())
        .collect();
    cuts.insert(0, 0);
    cuts.push(body.len());
    cuts.windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| Read::Bytes(body[w[0]..w[1]].to_vec()))
        .collect()
}

/// A whole `chat.completion`, for requests with `stream: false`.
pub(super) fn whole(script: &Script, model: &str, prompt: u64) -> Value {
    let mut message = json!({ "role": "assistant", "content": script.text });
    if !script.thinking.is_empty() {
        message["reasoning_content"] = json!(script.thinking.concat());
    }
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": script.finish_reason }],
        "usage": usage(script, prompt)
    })
}
