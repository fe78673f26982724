//! Validation of the loaded settings: every error names its key and how to fix it, in one line.

use std::fmt;

use super::{Purpose, Settings};

/// A configuration problem: the key at fault and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The key at fault, like `llm.default_model`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl SettingsError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Translates the `config` crate's error, keeping the key it names.
    pub(super) fn from_config(error: config::ConfigError) -> Self {
        match error {
            config::ConfigError::Type {
                unexpected,
                expected,
                key,
                ..
            } => Self::new(
                key.unwrap_or_else(|| "?".into()),
                format!("expected {expected}, found {unexpected}"),
            ),
            config::ConfigError::At { error, key, .. } => {
                let inner = Self::from_config(*error);
                match key {
                    Some(key) if inner.key == "?" || inner.key.is_empty() => {
                        Self::new(key, inner.message)
                    }
                    Some(key) if !inner.key.starts_with(&key) => {
                        Self::new(format!("{key}.{}", inner.key), inner.message)
                    }
                    _ => inner,
                }
            }
            config::ConfigError::Message(text) => Self::from_message(&text),
            config::ConfigError::FileParse { uri, cause } => Self::new(
                "--config",
                format!(
                    "{} is not valid TOML: {}",
                    uri.unwrap_or_else(|| "the file".into()),
                    one_line(&cause.to_string())
                ),
            ),
            other => Self::new("?", one_line(&other.to_string())),
        }
    }

    /// Serde's messages: "unknown field `x`, expected ..." and "missing field `x`".
    fn from_message(text: &str) -> Self {
        let field = text.split('`').nth(1).unwrap_or("?").to_string();
        if text.starts_with("unknown field") {
            Self::new(
                field,
                "unknown key; remove it or check its spelling against config/default.toml",
            )
        } else if text.starts_with("missing field") {
            Self::new(
                field,
                "missing; add it (config/default.toml lists every key)",
            )
        } else {
            Self::new("?", one_line(text))
        }
    }

    /// The environment variable that sets this key.
    pub fn env_var(&self) -> Option<String> {
        if self.key.starts_with('-') || self.key == "?" || self.key.contains('"') {
            return None;
        }
        Some(format!(
            "PARLEY__{}",
            self.key.replace('.', "__").to_uppercase()
        ))
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.message)?;
        let unknown = self.message.starts_with("unknown key");
        if let Some(var) = self.env_var().filter(|_| !unknown) {
            write!(f, " (file key {} or env {var})", self.key)?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(key, message()))
    }
}

fn check_range(value: Option<f64>, key: &str, min: f64, max: f64) -> Result<(), SettingsError> {
    check(value.is_none_or(|v| (min..=max).contains(&v)), key, || {
        format!("must be between {min} and {max}, or unset")
    })
}

fn check_url(value: &str, key: &str) -> Result<(), SettingsError> {
    let ok = reqwest::Url::parse(value)
        .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .unwrap_or(false);
    check(ok, key, || {
        format!("`{value}` is not an http(s) URL; write it like https://host/path")
    })
}

impl Settings {
    /// Checks everything that can be checked before connecting anything.
    pub(super) fn validate(&self, purpose: Purpose) -> Result<(), SettingsError> {
        self.validate_http()?;
        if purpose == Purpose::Healthcheck {
            return Ok(());
        }
        self.validate_llm(purpose)?;
        self.validate_platforms(purpose)?;
        self.validate_rest()
    }

    fn validate_llm(&self, purpose: Purpose) -> Result<(), SettingsError> {
        let llm = &self.llm;
        check_url(&llm.base_url, "llm.base_url")?;
        check(!llm.api_key.is_empty(), "llm.api_key", || {
            let need = if purpose == Purpose::Chat {
                "`parley chat`"
            } else {
                "answering"
            };
            format!("is empty but {need} needs it; set PARLEY__LLM__API_KEY to your API key")
        })?;
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
        check(
            reqwest::header::HeaderName::from_bytes(llm.conversation_header.as_bytes()).is_ok(),
            "llm.conversation_header",
            || "is not a valid HTTP header name; use letters, digits and '-'".into(),
        )?;
        self.validate_params()?;
        let t = &llm.timeouts;
        for (value, key) in [
            (t.connect_secs, "llm.timeouts.connect_secs"),
            (t.first_token_secs, "llm.timeouts.first_token_secs"),
            (t.idle_secs, "llm.timeouts.idle_secs"),
            (t.total_secs, "llm.timeouts.total_secs"),
        ] {
            check(value > 0, key, || "must be at least 1 second".into())?;
        }
        check(
            llm.retry.initial_backoff_ms <= llm.retry.max_backoff_ms,
            "llm.retry.initial_backoff_ms",
            || "must not exceed llm.retry.max_backoff_ms".into(),
        )
    }

    fn validate_params(&self) -> Result<(), SettingsError> {
        let llm = &self.llm;
        check_range(llm.temperature, "llm.temperature", 0.0, 2.0)?;
        check_range(llm.top_p, "llm.top_p", 0.0, 1.0)?;
        check_range(llm.presence_penalty, "llm.presence_penalty", -2.0, 2.0)?;
        check_range(llm.frequency_penalty, "llm.frequency_penalty", -2.0, 2.0)?;
        check(llm.n.is_none_or(|n| n >= 1), "llm.n", || {
            "must be at least 1, or unset".into()
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
        )
    }

    fn validate_platforms(&self, purpose: Purpose) -> Result<(), SettingsError> {
        if purpose != Purpose::Chat {
            check(
                self.telegram_enabled() || self.discord_enabled(),
                "telegram.token",
                || {
                    "no platform is enabled; set PARLEY__TELEGRAM__TOKEN or PARLEY__DISCORD__TOKEN (or try `parley chat`)".into()
                },
            )?;
        }
        check_url(&self.telegram.api_url, "telegram.api_url")?;
        if !self.discord.proxy_url.is_empty() {
            check_url(&self.discord.proxy_url, "discord.proxy_url")?;
        }
        check(
            self.telegram.group_per_minute > 0,
            "telegram.group_per_minute",
            || "must be at least 1".into(),
        )?;
        check(
            (1..=50).contains(&self.telegram.poll_timeout_secs),
            "telegram.poll_timeout_secs",
            || "must be 1 to 50 seconds (the Bot API holds a poll at most 50 s)".into(),
        )?;
        for admin in &self.access.admins {
            let ok = admin
                .split_once(':')
                .is_some_and(|(p, id)| matches!(p, "telegram" | "discord") && !id.is_empty());
            check(ok, "access.admins", || {
                format!("`{admin}` must look like telegram:123 or discord:456")
            })?;
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), SettingsError> {
        let listen = &self.http.listen;
        check(
            listen.is_empty() || listen.parse::<std::net::SocketAddr>().is_ok(),
            "http.listen",
            || {
                format!(
                    "`{listen}` is not an address; write it like 127.0.0.1:9464, or \"\" to disable"
                )
            },
        )?;
        check(
            (1..=3600).contains(&self.shutdown.grace_secs),
            "shutdown.grace_secs",
            || "must be between 1 and 3600".into(),
        )
    }

    fn validate_rest(&self) -> Result<(), SettingsError> {
        check(
            self.store.database_url.starts_with("sqlite:"),
            "store.database_url",
            || "must start with sqlite:, like sqlite://data/parley.db".into(),
        )?;
        check(
            self.history.budget_tokens >= 256,
            "history.budget_tokens",
            || "must be at least 256".into(),
        )?;
        let d = &self.dispatch;
        for (value, key) in [
            (d.max_concurrent, "dispatch.max_concurrent"),
            (d.queue_capacity, "dispatch.queue_capacity"),
            (d.per_conversation, "dispatch.per_conversation"),
        ] {
            check(value > 0, key, || "must be at least 1".into())?;
        }
        check(
            matches!(self.log.format.as_str(), "text" | "json"),
            "log.format",
            || {
                format!(
                    "`{}` is not a format; use \"text\" or \"json\"",
                    self.log.format
                )
            },
        )?;
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            || {
                format!(
                    "`{}` is not a log filter; use info, debug, or parley=debug",
                    self.log.level
                )
            },
        )
    }
}
