//! The fake's check of message contents: a string, or an array of OpenAI content parts —
//! `{"type":"text","text":..}` and `{"type":"image_url","image_url":{"url":..,"detail"?:..}}` —
//! with images only in user messages, only for models that read them, only as `data:` URLs of
//! PNG, JPEG, WebP or GIF bytes of at most 10 MiB (or http(s) URLs). A refusal is the body of
//! a 400, shaped as OpenAI shapes it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The largest image the API takes.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// The image types the API reads, by MIME type.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];

/// `Ok` when every message's content has a shape the API takes; else the 400's body.
pub fn check(body: &Value, model: &str, reads_images: bool) -> Result<(), Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or("");
        match &message["content"] {
            Value::String(_) => {}
            Value::Array(parts) if !parts.is_empty() => {
                for (j, part) in parts.iter().enumerate() {
                    let at = format!("messages.[{i}].content.[{j}]");
                    check_part(part, &at, role, model, reads_images)?;
                }
            }
            Value::Array(_) => {
                return Err(error(
                    "Invalid 'content': empty array. Expected an array with minimum length 1.",
                    &format!("messages.[{i}].content"),
                    "empty_array",
                ));
            }
            _ => {
                return Err(error(
                    "Invalid type for 'content': expected a string or an array of content parts.",
                    &format!("messages.[{i}].content"),
                    "invalid_type",
                ));
            }
        }
    }
    Ok(())
}

fn check_part(
    part: &Value,
    at: &str,
    role: &str,
    model: &str,
    reads_images: bool,
) -> Result<(), Value> {
    let keys = |allowed: &[&str]| {
        part.as_object()
            .is_some_and(|o| o.keys().all(|k| allowed.contains(&k.as_str())))
    };
    match part["type"].as_str() {
        Some("text") if part["text"].is_string() && keys(&["type", "text"]) => Ok(()),
        Some("text") => Err(error(
            "Invalid content part: a text part needs a string 'text' and nothing else.",
            at,
            "invalid_value",
        )),
        Some("image_url") if role != "user" => Err(error(
            &format!("Image content parts are only allowed in user messages, not in '{role}'."),
            at,
            "invalid_value",
        )),
        Some("image_url") if !reads_images => Err(error(
            &format!("Invalid content type. image_url is not supported by the model {model}."),
            &format!("{at}.type"),
            "invalid_content_type",
        )),
        Some("image_url") if keys(&["type", "image_url"]) => check_image(&part["image_url"], at),
        _ => Err(error(
            "Invalid content part: 'type' must be 'text' or 'image_url'.",
            &format!("{at}.type"),
            "invalid_value",
        )),
    }
}

fn check_image(image: &Value, at: &str) -> Result<(), Value> {
    let url = image["url"].as_str().unwrap_or("");
    let detail_ok = image
        .get("detail")
        .is_none_or(|d| matches!(d.as_str(), Some("auto" | "low" | "high")));
    let only_known = image
        .as_object()
        .is_some_and(|o| o.keys().all(|k| k == "url" || k == "detail"));
    if !detail_ok || !only_known {
        return Err(error("Invalid 'image_url' object.", at, "invalid_value"));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    let Some((mime, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return Err(error(
            "Invalid image URL: expected an http(s) URL or a base64 data URL.",
            &format!("{at}.image_url.url"),
            "invalid_image_url",
        ));
    };
    if !IMAGE_TYPES.contains(&mime) {
        return Err(error(
            &format!("Invalid image type {mime}: use PNG, JPEG, WebP or GIF."),
            &format!("{at}.image_url.url"),
            "invalid_image_format",
        ));
    }
    let Ok(bytes) = STANDARD.decode(data) else {
        return Err(error(
            "Invalid base64 image data.",
            &format!("{at}.image_url.url"),
            "invalid_image_url",
        ));
    };
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(error(
            "Image too large: the limit is 10 MiB.",
            &format!("{at}.image_url.url"),
            "image_too_large",
        ));
    }
    Ok(())
}

/// The text of a content: the string, or its text parts joined by blank lines.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

fn error(message: &str, param: &str, code: &str) -> Value {
    json!({ "error": { "message": message, "type": "invalid_request_error",
        "param": param, "code": code } })
}
