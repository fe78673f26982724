//! Tests of the inbox's form of a Discord message: read back by another instance, it maps to
//! the turn the receiving instance would have queued.

use std::collections::HashSet;

use serde_json::json;

use super::*;
use crate::engine::event::{Content, Incoming};

const BOT: u64 = 1000;

/// A message in thread 11 of guild 1 that mentions the bot's role 77 and replies to the bot's
/// message, with an attachment on each, written by a member with a nickname.
fn message() -> Message {
    let file = |id: &str, name: &str| {
        json!({ "id": id, "filename": name, "size": 12, "url": format!("https://cdn.discordapp.com/attachments/11/{id}/{name}?ex=1&is=2&hm=3"),
            "proxy_url": "https://media.discordapp.net/x", "content_type": "text/plain" })
    };
    let author = |id: &str, name: &str| json!({ "id": id, "username": name, "discriminator": "0" });
    let base = |id: &str, from: serde_json::Value, content: &str, files: serde_json::Value| {
        json!({
            "id": id, "channel_id": "11", "guild_id": "1", "content": content, "author": from,
            "timestamp": "2026-01-01T00:00:00+00:00", "tts": false, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": files,
            "embeds": [{ "title": "an embed" }], "pinned": false, "type": 0,
            "components": [{ "type": 1, "components": [{ "type": 2, "style": 1, "custom_id": "x", "label": "x" }] }],
        })
    };
    let replied = base(
        "4",
        author("1000", "parley"),
        "an answer",
        json!([file("8", "old.txt")]),
    );
    let mut value = base(
        "5",
        author("42", "ann"),
        "<@&77> and   this?",
        json!([file("9", "new.txt")]),
    );
    value["mention_roles"] = json!(["77"]);
    value["referenced_message"] = replied;
    value["message_reference"] = json!({ "message_id": "4", "channel_id": "11", "guild_id": "1" });
    value["member"] = json!({ "nick": "Annie", "roles": [], "joined_at": "2025-01-01T00:00:00+00:00",
        "deaf": false, "mute": false, "flags": 0 });
    serde_json::from_value(value).expect("a MESSAGE_CREATE serenity reads")
}

fn me() -> Identity {
    Identity {
        user: DiscordUserId::new(BOT),
        roles: vec![RoleId::new(77)],
    }
}

/// Answered only in channel 10 (so in its threads).
fn access() -> Access {
    Access {
        channels: HashSet::from(["10".to_string()]),
        ..Access::default()
    }
}

fn turn(inbound: Option<Inbound>) -> Incoming {
    match inbound {
        Some(Inbound::Turn(incoming)) => incoming,
        _ => panic!("expected a turn"),
    }
}

#[test]
fn a_kept_message_maps_on_another_instance_to_the_turn_it_was_received_as() {
    let parent = Some(ChannelId::new(10));
    let received = turn(inbound::to_inbound(&message(), &me(), &access(), parent));
    let payload = serde_json::to_string(&Kept::new(&message(), &me(), parent)).unwrap();

    // The answering instance knows nothing of the guild: no roles, no threads in its cache.
    let kept = Kept::decode(&payload).expect("reads back");
    let answered = turn(inbound::to_inbound(
        &kept.message,
        &kept.identity(),
        &access(),
        kept.parent,
    ));
    assert_eq!(answered.content, Content::Prompt("and this?".into()));
    assert_eq!(answered.key, received.key);
    assert_eq!(answered.author, received.author);
    assert_eq!(answered.author.display_name, "Annie");
    assert_eq!(answered.attachments, received.attachments);
    assert_eq!(
        answered.attachments.len(),
        2,
        "the replied-to file and its own"
    );
    assert_eq!(answered.reply_to, received.reply_to);
    assert_eq!(
        (answered.private, answered.may_configure),
        (received.private, received.may_configure)
    );
}

#[test]
fn the_kept_form_leaves_out_what_the_mapping_never_reads() {
    let payload = serde_json::to_string(&Kept::new(&message(), &me(), None)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(value["message"]["embeds"], json!([]));
    assert_eq!(value["message"]["components"], json!([]));
    assert_eq!(value["message"]["referenced_message"]["embeds"], json!([]));
}

#[test]
fn a_payload_that_is_not_a_kept_message_is_skipped() {
    assert!(Kept::decode("{\"update_id\": 1}").is_none());
}
