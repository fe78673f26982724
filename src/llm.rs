//! The OpenAI-compatible streaming completion client. (TEMPORARY STUB until h-llm merges.)

use serde::Deserialize;

/// Body parameters.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Params {
    /// t
    pub temperature: Option<f64>,
    /// t
    pub top_p: Option<f64>,
    /// t
    pub n: Option<u32>,
    /// t
    pub stop: Option<Vec<String>>,
    /// t
    pub max_tokens: Option<u32>,
    /// t
    pub presence_penalty: Option<f64>,
    /// t
    pub frequency_penalty: Option<f64>,
}

/// Param names.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ParamName {
    /// t
    Temperature,
    /// t
    TopP,
    /// t
    N,
    /// t
    Stop,
    /// t
    MaxTokens,
    /// t
    PresencePenalty,
    /// t
    FrequencyPenalty,
}

/// Override.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    /// t
    #[serde(default)]
    pub remove: Vec<ParamName>,
}
