//! Turns an HTTP error answer (status, headers, body) into a [`ModelError`].

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::engine::ports::{LengthUnit, ModelError, ModelName};
use crate::engine::split;

/// The longest API message kept in an error.
const MAX_MESSAGE: usize = 200;

/// Maps an error status and its body to the error the engine acts on.
pub(super) fn from_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    model: &ModelName,
) -> ModelError {
    let message = api_message(body);
    match status.as_u16() {
        401 | 403 => ModelError::Unauthorized,
        429 => ModelError::RateLimited {
            retry_after: retry_after(headers, SystemTime::now()),
        },
        404 | 400 if message.as_deref().is_some_and(names_missing_model) => {
            ModelError::UnknownModel(model.to_string())
        }
        400..=499 => {
            ModelError::BadRequest(message.unwrap_or_else(|| format!("HTTP {}", status.as_u16())))
        }
        _ => ModelError::Unavailable(match message {
            Some(text) => format!("HTTP {}: {text}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        }),
    }
}

/// The short message of an OpenAI-shaped, xAI-shaped or bare error body; `None` for HTML or noise.
pub(super) fn api_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    error_text(&value).map(|text| truncate(&text))
}

/// The text of an `error` value (`{"error":{"message":..}}`, `{"error":".."}`) or a top `message`.
pub(super) fn error_text(value: &serde_json::Value) -> Option<String> {
    let error = value.get("error");
    let text = match error {
        Some(serde_json::Value::String(text)) => Some(text.as_str()),
        Some(object) => object.get("message").and_then(|m| m.as_str()),
        None => value.get("message").and_then(|m| m.as_str()),
    };
    let code = error
        .and_then(|e| e.get("code"))
        .or_else(|| value.get("code"))
        .and_then(|c| c.as_str());
    match (text, code) {
        (Some(text), Some(code)) if code.contains("model_not_found") => {
            Some(format!("{text} (model_not_found)"))
        }
        (Some(text), _) => Some(text.to_string()),
        (None, Some(code)) => Some(code.to_string()),
        (None, None) => None,
    }
}

/// Shortens an API message to [`MAX_MESSAGE`] characters, the ellipsis included.
pub(super) fn truncate(text: &str) -> String {
    split::truncate(text.trim(), MAX_MESSAGE, LengthUnit::Chars)
}

fn names_missing_model(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("model")
        && [
            "not found",
            "does not exist",
            "not exist",
            "unknown",
            "no such",
            "model_not_found",
        ]
        .iter()
        .any(|phrase| lower.contains(phrase))
}

/// The wait a 429 asks for: `retry-after-ms`, else `Retry-After` as seconds or an HTTP date.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|t| t.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn seconds(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let map = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        let wait = retry_after(&map, SystemTime::now());
        assert_eq!(wait, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn fractional_retry_after_seconds_are_read() {
        let wait = retry_after(&headers(&[("retry-after", "2.5")]), SystemTime::now());
        assert_eq!(wait, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_relative_to_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let map = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:44 GMT")]);
        assert_eq!(retry_after(&map, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_garbage_retry_after_is_ignored() {
        let map = headers(&[("retry-after", "soon"), ("retry-after-ms", "-5")]);
        assert_eq!(retry_after(&map, SystemTime::now()), None);
    }

    #[test]
    fn long_api_messages_are_truncated() {
        let body = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(500));
        let message = api_message(&body).unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE, "{message}");
        assert!(message.ends_with('…'));
    }
}
