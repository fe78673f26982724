//! A secret value from the configuration (an API key, a bot token), kept out of every log line,
//! error and `Debug` output. Its own module, so the adapters and the client can take one without
//! depending on the settings tree.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A secret from the configuration: its `Debug` and `Display` print `***`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: &str) -> Self {
        Self(SecretString::from(value))
    }

    /// True when no value was configured.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().trim().is_empty()
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The wrapped value as a `SecretString`.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { "***" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
