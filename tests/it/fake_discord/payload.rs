//! Gateway and REST JSON as Discord writes it, with the fields serenity requires.

use serde_json::{Value, json};

use super::{BOT_ID, FakeFile, Message};

/// When every fake message was written.
const TIMESTAMP: &str = "2026-01-01T00:00:00.000000+00:00";

/// A message a user writes, to be dispatched as MESSAGE_CREATE.
#[derive(Debug, Clone)]
pub struct UserMessage {
    /// Channel, thread or DM channel.
    pub channel_id: String,
    /// The guild; `None` for a DM.
    pub guild_id: Option<String>,
    /// The author.
    pub author_id: String,
    /// The author's user name.
    pub author_name: String,
    /// The author's server nickname.
    pub nick: Option<String>,
    /// True when the author is a bot.
    pub bot: bool,
    /// The text, mention markup included.
    pub content: String,
    /// Users mentioned.
    pub mentions: Vec<String>,
    /// Roles mentioned.
    pub mention_roles: Vec<String>,
    /// The message this one replies to.
    pub reply_to: Option<String>,
    /// Its attachments.
    pub files: Vec<FakeFile>,
}

impl UserMessage {
    /// A message in a guild channel.
    pub fn guild(guild: &str, channel: &str, author: &str, content: &str) -> Self {
        Self {
            channel_id: channel.into(),
            guild_id: Some(guild.into()),
            author_id: author.into(),
            author_name: format!("user{author}"),
            nick: None,
            bot: false,
            content: content.into(),
            mentions: Vec::new(),
            mention_roles: Vec::new(),
            reply_to: None,
            files: Vec::new(),
        }
    }

    /// A direct message.
    pub fn dm(channel: &str, author: &str, content: &str) -> Self {
        Self {
            guild_id: None,
            ..Self::guild("0", channel, author, content)
        }
    }

    /// A guild message that mentions the bot as Discord writes it: `<@BOT_ID> text`.
    pub fn mention(guild: &str, channel: &str, author: &str, text: &str) -> Self {
        Self::guild(guild, channel, author, &format!("<@{BOT_ID}> {text}")).mentioning(BOT_ID)
    }

    /// Adds a user to `mentions`.
    pub fn mentioning(mut self, user: &str) -> Self {
        self.mentions.push(user.into());
        self
    }

    /// Sets the author's nickname.
    pub fn nick(mut self, nick: &str) -> Self {
        self.nick = Some(nick.into());
        self
    }

    /// Marks the author as a bot.
    pub fn by_a_bot(mut self) -> Self {
        self.bot = true;
        self
    }

    /// Attaches a file.
    pub fn with_file(mut self, file: FakeFile) -> Self {
        self.files.push(file);
        self
    }

    /// Makes it a reply to `message`.
    pub fn replying_to(mut self, message: &str) -> Self {
        self.reply_to = Some(message.into());
        self
    }
}

/// A slash command a user runs, to be dispatched as INTERACTION_CREATE.
#[derive(Debug, Clone)]
pub struct SlashCommand {
    /// The command's name.
    pub name: String,
    /// String and integer options, by name.
    pub options: Vec<(String, Value)>,
    /// Where it was run.
    pub channel_id: String,
    /// The guild; `None` in a DM.
    pub guild_id: Option<String>,
    /// Who ran it.
    pub user_id: String,
    /// The member's permissions in the channel (a decimal bit set), in guilds.
    pub permissions: String,
    /// The file of an `attachment` option.
    pub attachment: Option<FakeFile>,
}

impl SlashCommand {
    /// `/name` run in a guild channel by a member without special permissions.
    pub fn guild(guild: &str, channel: &str, user: &str, name: &str) -> Self {
        Self {
            name: name.into(),
            options: Vec::new(),
            channel_id: channel.into(),
            guild_id: Some(guild.into()),
            user_id: user.into(),
            // VIEW_CHANNEL | SEND_MESSAGES
            permissions: (1u64 << 10 | 1 << 11).to_string(),
            attachment: None,
        }
    }

    /// Gives the `attachment` option a file.
    pub fn attachment(mut self, file: FakeFile) -> Self {
        self.attachment = Some(file);
        self
    }

    /// Adds a string option.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.into(), value.into()));
        self
    }

    /// Adds an integer option.
    pub fn int_option(mut self, name: &str, value: i64) -> Self {
        self.options.push((name.into(), value.into()));
        self
    }

    /// Gives the member the Manage Server permission.
    pub fn manager(mut self) -> Self {
        self.permissions = (1u64 << 5 | 1 << 10 | 1 << 11).to_string();
        self
    }
}

/// A user object.
pub fn user(id: &str, name: &str, bot: bool) -> Value {
    json!({ "id": id, "username": name, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": bot })
}

/// The bot user, as in READY and on its own messages.
pub fn bot_user() -> Value {
    user(BOT_ID, "parley", true)
}

/// A full Message object for a stored message.
pub fn message(m: &Message) -> Value {
    let author = if m.author_id == BOT_ID {
        bot_user()
    } else {
        user(&m.author_id, &format!("user{}", m.author_id), false)
    };
    let mut value = json!({
        "id": m.id, "channel_id": m.channel_id, "author": author, "content": m.content,
        "timestamp": TIMESTAMP, "edited_timestamp": (m.edits > 0).then_some(TIMESTAMP),
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": m.attachments, "embeds": [], "pinned": false, "type": 0, "flags": m.flags,
    });
    if m.components.is_array() {
        value["components"] = m.components.clone();
    }
    if let Some(reply_to) = &m.reply_to {
        value["type"] = json!(19);
        value["message_reference"] = json!({ "message_id": reply_to, "channel_id": m.channel_id });
    }
    value
}

/// The `d` of MESSAGE_CREATE.
pub fn message_create(
    id: &str,
    m: &UserMessage,
    attachments: &[Value],
    referenced: Option<&Message>,
) -> Value {
    let mentions: Vec<Value> = m
        .mentions
        .iter()
        .map(|u| user(u, "someone", false))
        .collect();
    let mut d = json!({
        "id": id, "channel_id": m.channel_id,
        "author": user(&m.author_id, &m.author_name, m.bot), "content": m.content,
        "timestamp": TIMESTAMP, "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": mentions, "mention_roles": m.mention_roles,
        "attachments": attachments, "embeds": [], "pinned": false, "type": 0,
    });
    if m.files.iter().any(|f| f.voice) {
        d["flags"] = json!(1 << 13);
    }
    if let Some(guild) = &m.guild_id {
        d["guild_id"] = json!(guild);
        d["member"] = json!({ "nick": m.nick, "roles": [], "joined_at": TIMESTAMP,
            "deaf": false, "mute": false, "flags": 0 });
    }
    if let Some(referenced) = referenced {
        d["type"] = json!(19);
        d["message_reference"] = json!({ "message_id": referenced.id,
            "channel_id": referenced.channel_id });
        d["referenced_message"] = message(referenced);
    }
    d
}

/// The `d` of INTERACTION_CREATE for a slash command.
pub fn interaction(id: &str, token: &str, c: &SlashCommand, file: Option<&Value>) -> Value {
    let mut options: Vec<Value> = c
        .options
        .iter()
        .map(|(name, value)| {
            // STRING 3, INTEGER 4: the type the option was registered with.
            let kind = if value.is_i64() { 4 } else { 3 };
            json!({ "name": name, "type": kind, "value": value })
        })
        .collect();
    if let Some(file) = file {
        options.push(json!({ "name": "attachment", "type": 11, "value": file["id"] }));
    }
    let mut d = json!({
        "id": id, "application_id": super::APP_ID, "type": 2, "token": token, "version": 1,
        "channel_id": c.channel_id, "locale": "en-US", "entitlements": [],
        "attachment_size_limit": 26_214_400, "app_permissions": "2147483647",
        "data": { "id": "3000", "name": c.name, "type": 1, "options": options },
    });
    if let Some(file) = file {
        let id = file["id"].as_str().unwrap_or_default();
        d["data"]["resolved"] = json!({ "attachments": { id: file } });
    }
    let author = user(&c.user_id, &format!("user{}", c.user_id), false);
    match &c.guild_id {
        Some(guild) => {
            d["guild_id"] = json!(guild);
            d["guild_locale"] = json!("en-US");
            d["member"] = json!({ "user": author, "nick": null, "roles": [],
                "joined_at": TIMESTAMP, "deaf": false, "mute": false, "flags": 0,
                "permissions": c.permissions });
        }
        None => d["user"] = author,
    }
    d
}

/// A press of a button under a bot message, to be dispatched as INTERACTION_CREATE (type 3).
#[derive(Debug, Clone, Copy)]
pub struct Press<'a> {
    /// The message the button is under.
    pub message: &'a str,
    /// The button's `custom_id`.
    pub custom_id: &'a str,
    /// Who pressed.
    pub user_id: &'a str,
    /// The guild; `None` in a DM.
    pub guild_id: Option<&'a str>,
    /// The member has the Manage Server permission.
    pub manager: bool,
}

/// The `d` of INTERACTION_CREATE for a button press.
pub fn component(id: &str, token: &str, m: &Message, p: &Press<'_>) -> Value {
    let mut d = json!({
        "id": id, "application_id": super::APP_ID, "type": 3, "token": token, "version": 1,
        "channel_id": m.channel_id, "locale": "en-US", "entitlements": [],
        "attachment_size_limit": 26_214_400, "app_permissions": "2147483647",
        "data": { "custom_id": p.custom_id, "component_type": 2 },
        "message": message(m),
    });
    let author = user(p.user_id, &format!("user{}", p.user_id), false);
    let permissions: u64 = if p.manager {
        1 << 5 | 1 << 10 | 1 << 11
    } else {
        1 << 10 | 1 << 11
    };
    match p.guild_id {
        Some(guild) => {
            d["guild_id"] = json!(guild);
            d["guild_locale"] = json!("en-US");
            d["member"] = json!({ "user": author, "nick": null, "roles": [],
                "joined_at": TIMESTAMP, "deaf": false, "mute": false, "flags": 0,
                "permissions": permissions.to_string() });
        }
        None => d["user"] = author,
    }
    d
}

/// The `d` of READY.
pub fn ready(addr: &str, shard: [u64; 2]) -> Value {
    json!({
        "v": 10, "user": bot_user(), "guilds": [], "session_id": "fake-session",
        "resume_gateway_url": format!("ws://{addr}/gw"),
        "application": { "id": super::APP_ID, "flags": 0 },
        "shard": shard,
    })
}

/// The shard Discord sends an event with this `d` to, in a session of `count` shards: a
/// guild's events to `(guild_id >> 22) % count`, everything else (DMs) to shard 0.
pub fn shard_of(d: &Value, count: u64) -> u64 {
    let guild = d["guild_id"].as_str().and_then(|g| g.parse::<u64>().ok());
    guild.map_or(0, |id| (id >> 22) % count.max(1))
}
