//! Update payloads the fake hands out: messages as Telegram shapes them, with entities.

use serde_json::{Value, json};

use super::{BOT_ID, BOT_USERNAME, Sent};

/// A date every message carries (0 would mean "inaccessible" to teloxide).
const DATE: i64 = 1_760_000_000;

/// A person writing to the bot.
#[derive(Debug, Clone)]
pub struct User {
    /// Their id.
    pub id: i64,
    /// Their first name.
    pub name: String,
}

impl User {
    /// A user with this id and first name.
    pub fn new(id: i64, name: &str) -> Self {
        Self {
            id,
            name: name.into(),
        }
    }

    /// The `User` object.
    pub fn json(&self) -> Value {
        json!({ "id": self.id, "is_bot": false, "first_name": self.name })
    }
}

/// Where a message is written: a chat and maybe a forum topic.
#[derive(Debug, Clone)]
pub struct ChatRef {
    /// The chat id (positive for private chats).
    pub id: i64,
    /// The forum topic.
    pub thread: Option<i64>,
    /// `private` or `supergroup`.
    pub kind: &'static str,
}

/// The private chat with `user`.
pub fn private(user: &User) -> ChatRef {
    ChatRef {
        id: user.id,
        thread: None,
        kind: "private",
    }
}

/// A supergroup, or a topic of a forum supergroup.
pub fn group(id: i64, thread: Option<i64>) -> ChatRef {
    ChatRef {
        id,
        thread,
        kind: "supergroup",
    }
}

fn chat_json(chat: &ChatRef) -> Value {
    match chat.kind {
        "private" => json!({ "id": chat.id, "type": "private", "first_name": "User" }),
        _ => json!({ "id": chat.id, "type": "supergroup", "title": "Group",
            "is_forum": chat.thread.is_some() }),
    }
}

/// The bot's user object.
pub fn bot_user() -> Value {
    json!({ "id": BOT_ID, "is_bot": true, "first_name": "Parley", "username": BOT_USERNAME })
}

fn utf16(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Entities Telegram would attach: a leading bot command, @mentions.
fn entities(text: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut command_end = 0;
    if text.starts_with('/') {
        command_end = text.find(char::is_whitespace).unwrap_or(text.len());
        found.push(json!({ "type": "bot_command", "offset": 0,
            "length": utf16(&text[..command_end]) }));
    }
    for (at, _) in text.match_indices('@') {
        let rest = &text[at + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len > 0 && at >= command_end {
            found.push(json!({ "type": "mention", "offset": utf16(&text[..at]),
                "length": len + 1 }));
        }
    }
    found
}

/// A user's text message.
pub fn message(id: i64, chat: &ChatRef, from: &User, text: &str, to: Option<&Sent>) -> Value {
    let mut message = json!({ "message_id": id, "date": DATE, "chat": chat_json(chat),
        "from": from.json(), "text": text });
    let entities = entities(text);
    if !entities.is_empty() {
        message["entities"] = json!(entities);
    }
    if let Some(thread) = chat.thread {
        message["message_thread_id"] = json!(thread);
        message["is_topic_message"] = json!(true);
    }
    if let Some(sent) = to {
        message["reply_to_message"] = bot_message(sent, chat);
    }
    message
}

/// A user's message with a photo, document or voice (`media`: its field and value) and a
/// caption with its entities, replying to the message `replied` when given.
pub fn media_message(
    id: i64,
    chat: &ChatRef,
    from: &User,
    media: (&str, Value),
    caption: &str,
    replied: Option<Value>,
) -> Value {
    let mut message = message(id, chat, from, "", None);
    if let Some(fields) = message.as_object_mut() {
        fields.remove("text");
    }
    message[media.0] = media.1;
    if !caption.is_empty() {
        message["caption"] = json!(caption);
        let entities = entities(caption);
        if !entities.is_empty() {
            message["caption_entities"] = json!(entities);
        }
    }
    if let Some(replied) = replied {
        message["reply_to_message"] = replied;
    }
    message
}

/// The bot's message `sent`, as it appears in updates.
pub fn bot_message(sent: &Sent, chat: &ChatRef) -> Value {
    let mut message = json!({ "message_id": sent.id, "date": DATE, "chat": chat_json(chat),
        "from": bot_user(), "text": sent.text });
    if let Some(thread) = sent.thread {
        message["message_thread_id"] = json!(thread);
        message["is_topic_message"] = json!(true);
    }
    if let Some(markup) = &sent.markup {
        message["reply_markup"] = markup.clone();
    }
    message
}

/// A chat the fake only knows by its id's sign: positive ids are private chats.
fn chat_for(id: i64, thread: Option<i64>) -> ChatRef {
    if id > 0 {
        ChatRef {
            id,
            thread,
            kind: "private",
        }
    } else {
        group(id, thread)
    }
}

/// The bot's message `sent`, as methods return it.
pub fn sent_message(sent: &Sent) -> Value {
    bot_message(sent, &chat_for(sent.chat, sent.thread))
}
