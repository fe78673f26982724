//! The Bot API client: a teloxide `Bot` on the configured server, the `sendMessageDraft` method
//! teloxide lacks, and the mapping of Bot API errors onto the engine's [`PlatformError`].

use serde::Serialize;
use teloxide::requests::{JsonRequest, Payload};
use teloxide::types::{ParseMode, True};
use teloxide::{ApiError, Bot, RequestError};

use crate::engine::ports::PlatformError;

/// Builds the bot for `api_url` (the official server or another Bot API server).
pub fn bot(token: &str, api_url: &str) -> Result<Bot, String> {
    let url = reqwest::Url::parse(api_url).map_err(|e| e.to_string())?;
    Ok(Bot::new(token).set_api_url(url))
}

/// `sendMessageDraft` (Bot API 9.3+): streams an ephemeral draft into a private chat.
#[derive(Debug, Clone, Serialize)]
pub struct SendMessageDraft {
    /// The private chat.
    pub chat_id: i64,
    /// Non-zero; the same id updates the same draft.
    pub draft_id: i64,
    /// The draft's text.
    pub text: String,
    /// `HTML` or nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_mode: Option<ParseMode>,
    /// Shows the user Telegram's button to stop the draft (Bot API 9.5); a press arrives as a
    /// `stopped_message_generation` update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_stop: Option<bool>,
}

impl Payload for SendMessageDraft {
    type Output = True;
    const NAME: &'static str = "SendMessageDraft";
}

/// Sends a draft with a raw request on the bot's API URL and token.
pub async fn send_draft(bot: &Bot, draft: SendMessageDraft) -> Result<(), RequestError> {
    JsonRequest::new(bot.clone(), draft).await.map(|_| ())
}

/// True when `error` says the HTML was refused ("can't parse entities").
pub fn is_parse_error(error: &RequestError) -> bool {
    matches!(error, RequestError::Api(ApiError::CantParseEntities(_)))
}

/// True when an edit changed nothing ("message is not modified").
pub fn is_not_modified(error: &RequestError) -> bool {
    matches!(error, RequestError::Api(ApiError::MessageNotModified))
}

/// The engine's view of a Bot API failure. teloxide removes the token from network errors.
pub fn platform_error(error: RequestError) -> PlatformError {
    match error {
        RequestError::RetryAfter(wait) => PlatformError::RetryAfter(wait.duration()),
        RequestError::Api(api) => api_error(api),
        RequestError::MigrateToChatId(to) => {
            PlatformError::Rejected(format!("the group moved to chat {to}"))
        }
        RequestError::Network(e) => PlatformError::Unavailable(e.to_string()),
        RequestError::InvalidJson { source, .. } => {
            PlatformError::Unavailable(format!("unreadable answer: {source}"))
        }
        RequestError::Io(e) => PlatformError::Unavailable(e.to_string()),
    }
}

fn api_error(api: ApiError) -> PlatformError {
    match api {
        ApiError::MessageToEditNotFound | ApiError::MessageIdInvalid => PlatformError::MessageGone,
        ApiError::BotBlocked
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel
        | ApiError::UserDeactivated
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots
        | ApiError::NotEnoughRightsToPostMessages
        | ApiError::GroupDeactivated => PlatformError::Forbidden(api.to_string()),
        ApiError::Unknown(text) if text.starts_with("Forbidden") => PlatformError::Forbidden(text),
        other => PlatformError::Rejected(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use teloxide::types::Seconds;

    use super::*;

    #[test]
    fn bot_api_errors_map_to_what_the_engine_does_next() {
        let retry = platform_error(RequestError::RetryAfter(Seconds::from_seconds(7)));
        assert_eq!(
            retry,
            PlatformError::RetryAfter(std::time::Duration::from_secs(7))
        );
        let gone = platform_error(RequestError::Api(ApiError::MessageToEditNotFound));
        assert_eq!(gone, PlatformError::MessageGone);
        for blocked in [ApiError::BotBlocked, ApiError::BotKickedFromSupergroup] {
            let error = platform_error(RequestError::Api(blocked));
            assert!(matches!(error, PlatformError::Forbidden(_)), "{error:?}");
        }
        let parse = RequestError::Api(ApiError::CantParseEntities("x".into()));
        assert!(is_parse_error(&parse));
        assert!(matches!(platform_error(parse), PlatformError::Rejected(_)));
        assert!(is_not_modified(&RequestError::Api(
            ApiError::MessageNotModified
        )));
    }
}
