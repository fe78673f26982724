//! Tests of which messages the bot answers and how they are converted.

use serde_json::json;

use super::*;

const BOT: u64 = 1000;

fn me() -> Identity {
    Identity {
        user: DiscordUserId::new(BOT),
        roles: vec![RoleId::new(77)],
    }
}

fn message(content: &str, guild: Option<&str>, mentions: &[u64], bot: bool) -> Message {
    let mentions: Vec<_> = mentions
        .iter()
        .map(|id| json!({ "id": id.to_string(), "username": "x", "discriminator": "0" }))
        .collect();
    let mut value = json!({
        "id": "5", "channel_id": "10", "content": content,
        "author": { "id": "42", "username": "ann", "discriminator": "0", "bot": bot },
        "timestamp": "2026-01-01T00:00:00+00:00", "tts": false, "mention_everyone": false,
        "mentions": mentions, "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0,
    });
    if let Some(guild) = guild {
        value["guild_id"] = json!(guild);
    }
    serde_json::from_value(value).unwrap()
}

/// The turn a message starts, if any.
fn to_incoming(
    message: &Message,
    me: &Identity,
    access: &Access,
    parent: Option<ChannelId>,
) -> Option<Incoming> {
    match to_inbound(message, me, access, parent)? {
        Inbound::Turn(incoming) => Some(incoming),
        Inbound::NothingAsked { .. } => None,
    }
}

fn prompt(incoming: &Incoming) -> &str {
    match &incoming.content {
        Content::Prompt(text) => text,
        Content::Command(_) => panic!("expected a prompt"),
    }
}

#[test]
fn a_mention_in_a_guild_is_answered_without_the_mention() {
    let m = message("<@1000> what is   2+2?", Some("1"), &[BOT], false);
    let incoming = to_incoming(&m, &me(), &Access::default(), None).unwrap();
    assert_eq!(prompt(&incoming), "what is 2+2?");
    assert!(!incoming.private);
    assert_eq!(incoming.key.chat.as_str(), "10");
    assert_eq!(incoming.reply_to.unwrap().as_str(), "5");
}

#[test]
fn a_role_mention_addresses_the_bot_and_is_stripped() {
    let mut m = message("<@&77> hello", Some("1"), &[], false);
    m.mention_roles = vec![RoleId::new(77)];
    let incoming = to_incoming(&m, &me(), &Access::default(), None).unwrap();
    assert_eq!(prompt(&incoming), "hello");
}

#[test]
fn unaddressed_and_bot_messages_are_ignored() {
    let access = Access::default();
    assert!(
        to_incoming(
            &message("hello", Some("1"), &[], false),
            &me(),
            &access,
            None
        )
        .is_none()
    );
    let from_bot = message("<@1000> hi", Some("1"), &[BOT], true);
    assert!(to_incoming(&from_bot, &me(), &access, None).is_none());
}

#[test]
fn a_mention_alone_asks_nothing_and_is_answered_so() {
    let only_mention = message("<@!1000>  ", Some("1"), &[BOT], false);
    let inbound = to_inbound(&only_mention, &me(), &Access::default(), None);
    let Some(Inbound::NothingAsked { key, reply_to }) = inbound else {
        panic!("expected nothing asked: {inbound:?}");
    };
    assert_eq!(key.chat.as_str(), "10");
    assert_eq!(reply_to.as_str(), "5");
    let elsewhere = Access {
        channels: ["11".to_string()].into(),
        ..Access::default()
    };
    assert!(to_inbound(&only_mention, &me(), &elsewhere, None).is_none());
}

#[test]
fn every_dm_is_answered_and_private() {
    let incoming = to_incoming(
        &message("hi", None, &[], false),
        &me(),
        &Access::default(),
        None,
    );
    assert!(incoming.unwrap().private);
}

#[test]
fn allow_lists_keep_the_bot_quiet_elsewhere() {
    let m = message("<@1000> hi", Some("1"), &[BOT], false);
    let channels = Access {
        channels: ["11".to_string()].into(),
        ..Access::default()
    };
    assert!(to_incoming(&m, &me(), &channels, None).is_none());
    let parent = Some(ChannelId::new(11));
    assert!(to_incoming(&m, &me(), &channels, parent).is_some());
    let guilds = Access {
        guilds: ["2".to_string()].into(),
        ..Access::default()
    };
    assert!(to_incoming(&m, &me(), &guilds, None).is_none());
    let dm = message("hi", None, &[], false);
    assert!(to_incoming(&dm, &me(), &guilds, None).is_none());
}

#[test]
fn listed_admins_may_configure_in_guilds() {
    let m = message("<@1000> /model grok-3", Some("1"), &[BOT], false);
    let admins = Access {
        admins: ["discord:42".to_string()].into(),
        ..Access::default()
    };
    let incoming = to_incoming(&m, &me(), &admins, None).unwrap();
    assert!(incoming.may_configure);
    assert!(matches!(
        incoming.content,
        Content::Command(Command::Model(Some(_)))
    ));
    let other = to_incoming(&m, &me(), &Access::default(), None).unwrap();
    assert!(!other.may_configure);
}

/// `message` with these Attachment objects.
fn with_attachments(mut message: Message, files: serde_json::Value) -> Message {
    message.attachments = serde_json::from_value(files).unwrap();
    message
}

#[test]
fn attachments_travel_with_a_prompt_and_a_voice_message_is_a_kind_not_read() {
    let files = json!([
        { "id": "1", "filename": "message.txt", "size": 3000, "url": "https://cdn.discordapp.com/a/1/message.txt",
          "proxy_url": "https://media.discordapp.net/a/1/message.txt", "content_type": "text/plain; charset=utf-8" },
        { "id": "2", "filename": "voice-message.ogg", "size": 900, "url": "https://cdn.discordapp.com/a/2/v.ogg",
          "proxy_url": "https://media.discordapp.net/a/2/v.ogg", "content_type": "audio/ogg",
          "duration_secs": 2.0, "waveform": "AAAA" },
    ]);
    let dm = with_attachments(message("", None, &[], false), files);
    let incoming = to_incoming(&dm, &me(), &Access::default(), None).expect("a turn");
    assert_eq!(prompt(&incoming), "", "a file alone is asked about");
    let kinds: Vec<_> = incoming.attachments.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            crate::engine::attachment::AttachmentKind::File,
            crate::engine::attachment::AttachmentKind::Unreadable("voice messages"),
        ]
    );
    assert_eq!(incoming.attachments[0].size, Some(3000));
    assert_eq!(
        incoming.attachments[0].source.as_str(),
        "https://cdn.discordapp.com/a/1/message.txt"
    );
}
