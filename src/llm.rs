//! The OpenAI-compatible streaming completion client.
