//! Inbound mapping: which Telegram messages are addressed to the bot, and what they ask for.

use std::ops::Range;

use teloxide::types::{Message, MessageEntityKind};

use super::files;
use crate::engine::attachment::Attachment;
use crate::engine::command::Command;
use crate::engine::event::{Author, ChatKey, MessageRef, PlatformKind, UserId};

/// The bot's own identity, from getMe.
#[derive(Debug, Clone)]
pub struct Me {
    /// The bot's user id.
    pub id: u64,
    /// The bot's username, without `@`.
    pub username: String,
}

/// What an addressed message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Text for the model.
    Prompt(String),
    /// A neutral command.
    Command(Command),
    /// /start or /help.
    Help,
    /// /model without a name: the current model and a keyboard.
    ModelMenu,
    /// /ask without a question.
    EmptyAsk,
    /// A command the bot does not know, addressed to it.
    Unknown(String),
}

/// A message addressed to the bot, mapped to neutral terms.
#[derive(Debug, Clone)]
pub struct Addressed {
    /// The conversation place: the chat, or its forum topic.
    pub key: ChatKey,
    /// Who wrote it.
    pub author: Author,
    /// True in a private chat.
    pub private: bool,
    /// The user's message, answered as a reply in groups.
    pub reply_to: Option<MessageRef>,
    /// What it asks for.
    pub action: Action,
    /// The files a prompt brings: those of the message it replies to, then its own.
    pub attachments: Vec<Attachment>,
}

/// Maps a message; `None` when it is not for the bot (neither text nor a file, from a bot,
/// unaddressed). A caption is the text of a photo or a file; a file without one is a prompt
/// where a text would be.
pub fn map_message(message: &Message, me: &Me) -> Option<Addressed> {
    let own = files::attachments(message);
    let text = message.text().or_else(|| message.caption());
    if text.is_none() && own.is_empty() {
        return None;
    }
    let text = text.unwrap_or("");
    let from = message.from.as_ref().filter(|user| !user.is_bot)?;
    let private = message.chat.is_private();
    let replied = message.reply_to_message();
    let to_bot = replied
        .and_then(|m| m.from.as_ref())
        .is_some_and(|user| user.id.0 == me.id);
    let mut attachments = replied.map(files::attachments).unwrap_or_default();
    attachments.extend(own);
    let action = classify(text, private, &mentions(message, me), to_bot, &me.username);
    let action = with_files(action, text, !attachments.is_empty(), private || to_bot)?;
    Some(Addressed {
        key: chat_key(message),
        author: Author {
            id: UserId::new(from.id.0.to_string()),
            display_name: from.full_name(),
        },
        private,
        reply_to: (!private).then(|| MessageRef::new(message.id.0.to_string())),
        action,
        attachments,
    })
}

/// What a message with files asks for: a mention alone, an empty `/ask` or no text at all
/// (where every message is addressed) asks about the files.
fn with_files(action: Option<Action>, text: &str, files: bool, addressed: bool) -> Option<Action> {
    match action {
        Some(Action::EmptyAsk) if files => Some(Action::Prompt(String::new())),
        None if files && addressed && !text.starts_with('/') => Some(Action::Prompt(String::new())),
        other => other,
    }
}

/// The conversation place of a message: its chat, or its forum topic.
pub fn chat_key(message: &Message) -> ChatKey {
    let key = ChatKey::new(PlatformKind::Telegram, message.chat.id.0.to_string());
    match message.thread_id.filter(|_| message.is_topic_message) {
        Some(thread) => key.with_thread(thread.0.0.to_string()),
        None => key,
    }
}

/// Byte ranges of the @mentions of this bot in the message's text.
fn mentions(message: &Message, me: &Me) -> Vec<Range<usize>> {
    let entities = message
        .parse_entities()
        .or_else(|| message.parse_caption_entities());
    let Some(entities) = entities else {
        return Vec::new();
    };
    entities
        .iter()
        .filter(|e| matches!(e.kind(), MessageEntityKind::Mention))
        .filter(|e| is_me(e.text().trim_start_matches('@'), &me.username))
        .map(|e| e.range())
        .collect()
}

fn is_me(name: &str, username: &str) -> bool {
    name.eq_ignore_ascii_case(username)
}

/// Decides what a text asks for. In groups only commands, @mentions of the bot and replies to
/// it are addressed; the mentions are removed from the prompt.
pub fn classify(
    text: &str,
    private: bool,
    mentions: &[Range<usize>],
    to_bot: bool,
    username: &str,
) -> Option<Action> {
    if let Some(rest) = text.strip_prefix('/') {
        return command(rest, private, username);
    }
    if private || to_bot {
        return prompt(text.trim());
    }
    if mentions.is_empty() {
        return None;
    }
    let mut stripped = String::with_capacity(text.len());
    let mut at = 0;
    for range in mentions {
        stripped.push_str(text.get(at..range.start).unwrap_or(""));
        at = range.end;
    }
    stripped.push_str(text.get(at..).unwrap_or(""));
    let words = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
    // A mention alone asks nothing yet: answered like an empty /ask.
    prompt(&words).or(Some(Action::EmptyAsk))
}

fn prompt(text: &str) -> Option<Action> {
    (!text.is_empty()).then(|| Action::Prompt(text.to_string()))
}

fn command(rest: &str, private: bool, username: &str) -> Option<Action> {
    let (word, arg) = match rest.split_once(char::is_whitespace) {
        Some((word, arg)) => (word, arg.trim()),
        None => (rest, ""),
    };
    let (name, target) = match word.split_once('@') {
        Some((name, target)) => (name, Some(target)),
        None => (word, None),
    };
    if target.is_some_and(|t| !is_me(t, username)) {
        return None;
    }
    let name = name.to_ascii_lowercase();
    Some(match name.as_str() {
        "ask" if arg.is_empty() => Action::EmptyAsk,
        "ask" => Action::Prompt(arg.to_string()),
        "start" | "help" => Action::Help,
        "model" if arg.is_empty() => Action::ModelMenu,
        _ => match Command::parse(&format!("/{name} {arg}")) {
            Some(command) => Action::Command(command),
            None if private || target.is_some() => Action::Unknown(name),
            None => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::command::SystemAction;

    const BOT: &str = "parley_bot";

    #[test]
    fn every_private_text_is_a_prompt() {
        let action = classify(" hello ", true, &[], false, BOT);
        assert_eq!(action, Some(Action::Prompt("hello".into())));
    }

    #[test]
    fn group_text_needs_a_mention_or_a_reply_to_the_bot() {
        assert_eq!(classify("chatting", false, &[], false, BOT), None);
        let text = "hey @parley_bot what is 2+2?";
        let mention = [Range { start: 4, end: 15 }];
        let action = classify(text, false, &mention, false, BOT);
        assert_eq!(action, Some(Action::Prompt("hey what is 2+2?".into())));
        let action = classify("and then?", false, &[], true, BOT);
        assert_eq!(action, Some(Action::Prompt("and then?".into())));
    }

    #[test]
    fn a_mention_alone_is_answered_like_an_empty_ask() {
        let mention = [Range { start: 0, end: 11 }];
        let action = classify("@parley_bot", false, &mention, false, BOT);
        assert_eq!(action, Some(Action::EmptyAsk));
        let action = classify("@parley_bot  ", false, &mention, false, BOT);
        assert_eq!(action, Some(Action::EmptyAsk));
    }

    #[test]
    fn commands_map_to_actions_and_other_bots_commands_are_ignored() {
        let ask = classify("/ask@Parley_Bot why?", false, &[], false, BOT);
        assert_eq!(ask, Some(Action::Prompt("why?".into())));
        assert_eq!(classify("/model@other_bot", false, &[], false, BOT), None);
        assert_eq!(
            classify("/model", false, &[], false, BOT),
            Some(Action::ModelMenu)
        );
        assert_eq!(
            classify("/start", true, &[], false, BOT),
            Some(Action::Help)
        );
        assert_eq!(
            classify("/new", false, &[], false, BOT),
            Some(Action::Command(Command::Reset))
        );
        assert_eq!(
            classify("/system be brief", false, &[], false, BOT),
            Some(Action::Command(Command::System(SystemAction::Set(
                "be brief".into()
            ))))
        );
        assert_eq!(classify("/weather", false, &[], false, BOT), None);
        assert_eq!(
            classify("/weather", true, &[], false, BOT),
            Some(Action::Unknown("weather".into()))
        );
    }

    #[test]
    fn a_file_without_a_question_is_a_prompt_where_the_message_is_addressed() {
        let empty = || Some(Action::Prompt(String::new()));
        assert_eq!(with_files(None, "", true, true), empty(), "a private photo");
        assert_eq!(
            with_files(None, "", true, false),
            None,
            "an unaddressed group photo"
        );
        let mention = Some(Action::EmptyAsk);
        assert_eq!(
            with_files(mention.clone(), "@parley_bot", true, false),
            empty()
        );
        assert_eq!(
            with_files(mention.clone(), "@parley_bot", false, false),
            mention
        );
        assert_eq!(with_files(None, "/weather@other_bot", true, true), None);
        let asked = Some(Action::Prompt("why?".into()));
        assert_eq!(with_files(asked.clone(), "why?", true, false), asked);
    }
}
