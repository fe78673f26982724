//! What the completion requests of a conversation carry: their content parts, the images in
//! them, and whether each request's messages extend the previous one's byte for byte.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A PNG's signature and header chunk, followed by `len` bytes made from `seed`.
pub fn png(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed));
    bytes
}

/// A JPEG's first bytes, followed by `len` bytes made from `seed` (what Telegram makes of a
/// photo).
pub fn jpeg(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = b"\xff\xd8\xff\xe0\0\x10JFIF".to_vec();
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(17) ^ seed));
    bytes
}

/// The `data:` URL of `bytes` with `mime`, as the API is sent it.
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

/// The last message of a request body.
pub fn last_message(body: &Value) -> Value {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages.last().cloned().unwrap_or(Value::Null)
}

/// Every image URL of a request body, in order.
pub fn image_urls(body: &Value) -> Vec<String> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter_map(|m| m["content"].as_array().cloned())
        .flatten()
        .filter(|p| p["type"] == "image_url")
        .filter_map(|p| p["image_url"]["url"].as_str().map(String::from))
        .collect()
}

/// The text parts of a message's content (its string as one part).
pub fn texts(message: &Value) -> Vec<String> {
    match &message["content"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(Deserialize)]
struct Messages<'a> {
    #[serde(borrow)]
    messages: &'a RawValue,
}

/// The exact bytes of a request body's `messages` array.
pub fn raw_messages(raw: &[u8]) -> String {
    let body: Messages<'_> = serde_json::from_slice(raw).expect("a body with messages");
    body.messages.get().to_string()
}

/// True when the `messages` of request `next` extend those of `previous` byte for byte: the
/// earlier array, without its closing bracket, is where the later one starts.
pub fn extends(previous: &[u8], next: &[u8]) -> bool {
    let (before, after) = (raw_messages(previous), raw_messages(next));
    let open = before.strip_suffix(']').expect("an array");
    after.len() > before.len() && after.starts_with(open) && after[open.len()..].starts_with(',')
}
