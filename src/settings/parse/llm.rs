//! `[llm]` parsed: the completion client's configuration and the models users may choose.

use std::time::Duration;

use secrecy::SecretString;

use super::{check, http_url};
use crate::engine::ports::ModelName;
use crate::llm::{ClientConfig, Params, RetryPolicy, Timeouts};
use crate::settings::{LlmSettings, Purpose, RetrySettings, SettingsError, TimeoutSettings};

/// `llm.models` and `llm.default_model`, one of them.
pub(super) struct Models {
    /// Every model users may choose.
    pub all: Vec<ModelName>,
    /// The model of chats that chose none.
    pub default: ModelName,
}

/// The client's configuration, and the models it may be asked for.
pub(super) fn client(
    llm: &LlmSettings,
    purpose: Purpose,
) -> Result<(ClientConfig, Models), SettingsError> {
    let base_url = http_url(&llm.base_url, "llm.base_url")?;
    let api_key = api_key(llm, purpose)?;
    let models = models(llm)?;
    let conversation_header = header(&llm.conversation_header)?;
    let params = params(llm)?;
    let timeouts = timeouts(&llm.timeouts)?;
    let retry = retry(&llm.retry)?;
    let config = ClientConfig {
        base_url,
        api_key,
        conversation_header,
        stream: llm.stream,
        params,
        overrides: llm.overrides.clone(),
        timeouts,
        retry,
    };
    Ok((config, models))
}

/// The default system prompt; `None` when it is blank.
pub(super) fn system_prompt(llm: &LlmSettings) -> Option<String> {
    let prompt = llm.system_prompt.trim();
    (!prompt.is_empty()).then(|| llm.system_prompt.clone())
}

fn api_key(llm: &LlmSettings, purpose: Purpose) -> Result<SecretString, SettingsError> {
    check(!llm.api_key.is_empty(), "llm.api_key", || {
        let need = if purpose == Purpose::Chat {
            "`parley chat`"
        } else {
            "answering"
        };
        format!("is empty but {need} needs it; set PARLEY__LLM__API_KEY to your API key")
    })?;
    Ok(llm.api_key.to_secret_string())
}

fn models(llm: &LlmSettings) -> Result<Models, SettingsError> {
    check(!llm.models.is_empty(), "llm.models", || {
        "is empty; list at least one model, like [\"grok-4-fast-non-reasoning\"]".into()
    })?;
    for (i, model) in llm.models.iter().enumerate() {
        check(!model.trim().is_empty(), "llm.models", || {
            "has an empty name".into()
        })?;
        check(!llm.models[..i].contains(model), "llm.models", || {
            format!("lists `{model}` twice")
        })?;
    }
    check(
        llm.models.contains(&llm.default_model),
        "llm.default_model",
        || {
            format!(
                "`{}` is not in llm.models; use one of: {}",
                llm.default_model,
                llm.models.join(", ")
            )
        },
    )?;
    Ok(Models {
        all: llm.models.iter().map(ModelName::new).collect(),
        default: ModelName::new(&llm.default_model),
    })
}

/// `llm.image_models`: names, each once. A name outside `llm.models` is allowed (the lists are
/// often changed apart); it is simply never asked.
pub(super) fn image_models(llm: &LlmSettings) -> Result<Vec<ModelName>, SettingsError> {
    let names = &llm.image_models;
    for (i, model) in names.iter().enumerate() {
        check(!model.trim().is_empty(), "llm.image_models", || {
            "has an empty name; list model names, or [] when no model reads images".into()
        })?;
        check(!names[..i].contains(model), "llm.image_models", || {
            format!("lists `{model}` twice")
        })?;
    }
    Ok(names.iter().map(ModelName::new).collect())
}

fn header(name: &str) -> Result<String, SettingsError> {
    check(
        reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok(),
        "llm.conversation_header",
        || "is not a valid HTTP header name; use letters, digits and '-'".into(),
    )?;
    Ok(name.to_string())
}

fn params(llm: &LlmSettings) -> Result<Params, SettingsError> {
    in_range(llm.temperature, "llm.temperature", 0.0, 2.0)?;
    in_range(llm.top_p, "llm.top_p", 0.0, 1.0)?;
    in_range(llm.presence_penalty, "llm.presence_penalty", -2.0, 2.0)?;
    in_range(llm.frequency_penalty, "llm.frequency_penalty", -2.0, 2.0)?;
    check(llm.n.is_none_or(|n| (1..=4).contains(&n)), "llm.n", || {
        "must be between 1 and 4 (answers per request, browsed with ◀ ▶), or unset".into()
    })?;
    check(
        llm.max_tokens.is_none_or(|n| n >= 1),
        "llm.max_tokens",
        || "must be at least 1, or unset".into(),
    )?;
    check(
        llm.stop.as_ref().is_none_or(|s| s.len() <= 4),
        "llm.stop",
        || "allows at most 4 strings".into(),
    )?;
    Ok(llm.params())
}

fn in_range(value: Option<f64>, key: &str, min: f64, max: f64) -> Result<(), SettingsError> {
    check(value.is_none_or(|v| (min..=max).contains(&v)), key, || {
        format!("must be between {min} and {max}, or unset")
    })
}

fn timeouts(t: &TimeoutSettings) -> Result<Timeouts, SettingsError> {
    let secs = |value: u64, key: &str| -> Result<Duration, SettingsError> {
        check(value > 0, key, || "must be at least 1 second".into())?;
        Ok(Duration::from_secs(value))
    };
    Ok(Timeouts {
        connect: secs(t.connect_secs, "llm.timeouts.connect_secs")?,
        first_token: secs(t.first_token_secs, "llm.timeouts.first_token_secs")?,
        idle: secs(t.idle_secs, "llm.timeouts.idle_secs")?,
        total: secs(t.total_secs, "llm.timeouts.total_secs")?,
    })
}

fn retry(r: &RetrySettings) -> Result<RetryPolicy, SettingsError> {
    check(
        r.initial_backoff_ms <= r.max_backoff_ms,
        "llm.retry.initial_backoff_ms",
        || "must not exceed llm.retry.max_backoff_ms".into(),
    )?;
    Ok(RetryPolicy {
        max_retries: r.max_retries,
        initial_backoff: Duration::from_millis(r.initial_backoff_ms),
        max_backoff: Duration::from_millis(r.max_backoff_ms),
    })
}
