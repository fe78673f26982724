//! The client's settings: endpoint, key, body parameters with per-model overrides, timeouts, retries.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::engine::ports::ModelName;

/// Everything the completion client needs; built by the settings layer.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API root, e.g. `https://gateway.theturbo.ai/v1` (a trailing `/` is fine).
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; never printed.
    pub api_key: SecretString,
    /// The header that carries the conversation id, e.g. `X-Conversation-Id`.
    pub conversation_header: String,
    /// Stream the answer (SSE) or ask for one JSON response.
    pub stream: bool,
    /// Body parameters sent with every request (only those set).
    pub params: Params,
    /// Per-model changes to `params`, keyed by model name.
    pub overrides: HashMap<String, ModelOverride>,
    /// How long each phase of a request may take.
    pub timeouts: Timeouts,
    /// How failed requests are retried before the stream is handed out.
    pub retry: RetryPolicy,
}

/// The seed's optional body parameters; `None` means "not sent".
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Sampling temperature, 0..2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..1.
    pub top_p: Option<f64>,
    /// Replies per request.
    pub n: Option<u32>,
    /// Stop sequences.
    pub stop: Option<Vec<String>>,
    /// Longest reply in tokens.
    pub max_tokens: Option<u32>,
    /// -2..2; xAI reasoning models refuse it.
    pub presence_penalty: Option<f64>,
    /// -2..2; xAI reasoning models refuse it.
    pub frequency_penalty: Option<f64>,
}

/// The name of one body parameter, as written in config.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ParamName {
    /// `temperature`
    Temperature,
    /// `top_p`
    TopP,
    /// `n`
    N,
    /// `stop`
    Stop,
    /// `max_tokens`
    MaxTokens,
    /// `presence_penalty`
    PresencePenalty,
    /// `frequency_penalty`
    FrequencyPenalty,
}

/// Per-model changes to the global parameters: first `set` replaces values, then `remove` drops.
///
/// In TOML:
/// ```toml
/// [llm.overrides."grok-4"]
/// remove = ["presence_penalty", "frequency_penalty", "stop"]
/// set = { temperature = 0.3 }
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    /// Parameters never sent to this model.
    #[serde(default)]
    pub remove: Vec<ParamName>,
    /// Values that replace the global ones for this model (unset ones keep the global value).
    #[serde(default)]
    pub set: Params,
}

impl Params {
    /// The parameters to send to `model`: the global ones with the model's override applied.
    pub fn for_model(&self, model: &ModelName, overrides: &HashMap<String, ModelOverride>) -> Self {
        let Some(over) = overrides.get(model.as_str()) else {
            return self.clone();
        };
        let mut params = self.merged_with(&over.set);
        for name in &over.remove {
            params.clear(*name);
        }
        params
    }

    fn merged_with(&self, set: &Params) -> Self {
        Self {
            temperature: set.temperature.or(self.temperature),
            top_p: set.top_p.or(self.top_p),
            n: set.n.or(self.n),
            stop: set.stop.clone().or_else(|| self.stop.clone()),
            max_tokens: set.max_tokens.or(self.max_tokens),
            presence_penalty: set.presence_penalty.or(self.presence_penalty),
            frequency_penalty: set.frequency_penalty.or(self.frequency_penalty),
        }
    }

    fn clear(&mut self, name: ParamName) {
        match name {
            ParamName::Temperature => self.temperature = None,
            ParamName::TopP => self.top_p = None,
            ParamName::N => self.n = None,
            ParamName::Stop => self.stop = None,
            ParamName::MaxTokens => self.max_tokens = None,
            ParamName::PresencePenalty => self.presence_penalty = None,
            ParamName::FrequencyPenalty => self.frequency_penalty = None,
        }
    }
}

/// How long each phase of a completion may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP/TLS connection.
    pub connect: Duration,
    /// From sending the request to the first content or thinking event.
    pub first_token: Duration,
    /// The longest silence between two reads once tokens flow.
    pub idle: Duration,
    /// The whole reply, from sending the request.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// Capped exponential backoff with jitter for retryable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest computed wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides() -> HashMap<String, ModelOverride> {
        let over = ModelOverride {
            remove: vec![ParamName::PresencePenalty, ParamName::Stop],
            set: Params {
                temperature: Some(0.1),
                ..Params::default()
            },
        };
        HashMap::from([("grok-4".to_string(), over)])
    }

    fn global() -> Params {
        Params {
            temperature: Some(0.7),
            presence_penalty: Some(0.0),
            stop: Some(vec!["\n".into()]),
            max_tokens: Some(100),
            ..Params::default()
        }
    }

    #[test]
    fn an_override_sets_then_removes_parameters_for_its_model() {
        let params = global().for_model(&ModelName::new("grok-4"), &overrides());
        assert_eq!(params.temperature, Some(0.1));
        assert_eq!(params.presence_penalty, None);
        assert_eq!(params.stop, None);
        assert_eq!(params.max_tokens, Some(100));
    }

    #[test]
    fn other_models_keep_the_global_parameters() {
        let params = global().for_model(&ModelName::new("grok-3"), &overrides());
        assert_eq!(params, global());
    }
}
