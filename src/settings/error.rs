//! A configuration problem: the key at fault and how to fix it, printed as one line.

use std::fmt;

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

/// `text` with every run of whitespace, newlines included, made one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
