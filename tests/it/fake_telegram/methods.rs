//! The Bot API methods the fake serves, with the real API's checks and error texts.

use std::collections::VecDeque;
use std::time::Duration;

use parley::platform::telegram::html;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::updates::{bot_user, sent_message};
use super::{Answer, Sent, Shared, St};

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content \
    and reply markup are exactly the same as a current content and reply markup of the message";
const LONGEST_POLL: u64 = 50;

/// How long a callback query may wait for its answer before Telegram calls it too old.
const CALLBACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

fn bad(description: &str) -> Answer {
    Err((400, format!("Bad Request: {description}"), None))
}

/// Long polling: updates from `offset` on, waiting up to `timeout` seconds for the first. An
/// outage that starts meanwhile cuts the poll with 502, as the proxy does when the API goes; a
/// setWebhook meanwhile ends it with 409, as the Bot API does, and so does a poll that another
/// getUpdates overtakes (a second instance polling the same bot): "terminated by other getUpdates
/// request".
pub(super) async fn get_updates(shared: &Shared, body: &Value) -> Answer {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = body["timeout"].as_u64().unwrap_or(0).min(LONGEST_POLL);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout);
    let poll = {
        let mut st = shared.state.lock().unwrap();
        st.polls += 1;
        st.polls
    };
    shared.new_update.notify_waiters();
    loop {
        let notified = shared.new_update.notified();
        {
            let mut st = shared.state.lock().unwrap();
            if st.polls != poll {
                st.poll_conflicts += 1;
                let conflict = "Conflict: terminated by other getUpdates request; make sure that \
                     only one bot instance is running";
                return Err((409, conflict.into(), None));
            }
            if st.outage {
                return Err((502, "Bad Gateway".into(), None));
            }
            if !st.webhook.is_empty() {
                let ended = "Conflict: terminated by setWebhook request";
                return Err((409, ended.into(), None));
            }
            st.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            // As the real server: kinds the poll did not allow are dropped, never delivered.
            if let Some(allowed) = body["allowed_updates"].as_array() {
                let allowed = |u: &Value| {
                    allowed
                        .iter()
                        .any(|k| u.get(k.as_str().unwrap_or("")).is_some())
                };
                st.updates.retain(allowed);
            }
            if !st.updates.is_empty() || Instant::now() >= deadline {
                note_delivery(&mut st, started);
                return Ok(json!(st.updates));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// Notes when each user message in the answer first reached the bot, and how long it waited
/// for the poll that delivered it (`started` then).
fn note_delivery(st: &mut St, started: Instant) {
    let now = Instant::now();
    let St {
        updates,
        delivered,
        pushed,
        waited,
        ..
    } = st;
    for update in updates.iter() {
        let message = &update["message"];
        let chat = message["chat"]["id"].as_i64();
        if let (Some(chat), Some(id)) = (chat, message["message_id"].as_i64()) {
            delivered.entry((chat, id)).or_insert(now);
            if let Some(&at) = pushed.get(&(chat, id)) {
                let wait = started.saturating_duration_since(at);
                waited.entry((chat, id)).or_insert(wait);
            }
        }
    }
}

/// Every other method.
pub(super) fn dispatch(st: &mut St, method: &str, body: &Value) -> Answer {
    match method {
        "getme" => Ok(me()),
        "getwebhookinfo" => super::webhook::info(st),
        "setmycommands" => set_commands(st, body),
        "sendchataction" => chat_action(st, body),
        "sendmessage" => send_message(st, body),
        "editmessagetext" => edit_message(st, body),
        "editmessagereplymarkup" => edit_markup(st, body),
        "deletemessage" => delete_message(st, body),
        "sendmessagedraft" => send_draft(st, body),
        "answercallbackquery" => answer_callback(st, body),
        "getchatmember" => chat_member(st, body),
        "getfile" => super::files::get_file(st, body),
        _ => Err((404, "Not Found".into(), None)),
    }
}

fn me() -> Value {
    let mut me = bot_user();
    for field in ["can_join_groups", "can_read_all_group_messages"] {
        me[field] = json!(true);
    }
    for field in [
        "supports_inline_queries",
        "has_main_web_app",
        "can_connect_to_business",
    ] {
        me[field] = json!(false);
    }
    me
}

fn set_commands(st: &mut St, body: &Value) -> Answer {
    let commands = body["commands"].as_array().cloned().unwrap_or_default();
    for command in &commands {
        let name = command["command"].as_str().unwrap_or("");
        let name = name.strip_prefix('/').unwrap_or(name);
        let valid = (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let description = command["description"].as_str().unwrap_or("");
        if !valid || !(1..=256).contains(&description.chars().count()) {
            return bad("BOT_COMMAND_INVALID");
        }
    }
    st.commands = commands;
    Ok(json!(true))
}

fn chat_action(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    if st.blocked.contains(&chat) {
        return forbidden(chat);
    }
    if body["action"].as_str().is_none() {
        return bad("wrong parameter action in request");
    }
    Ok(json!(true))
}

fn forbidden(chat: i64) -> Answer {
    let what = if chat > 0 {
        "Forbidden: bot was blocked by the user"
    } else {
        "Forbidden: bot was kicked from the supergroup chat"
    };
    Err((403, what.into(), None))
}

fn chat_id(body: &Value) -> Result<i64, (i64, String, Option<u64>)> {
    body["chat_id"]
        .as_i64()
        .ok_or((400, "Bad Request: chat not found".into(), None))
}

/// The text after entity parsing, checked like Telegram does.
fn parsed_text(st: &St, body: &Value) -> Result<(String, bool), (i64, String, Option<u64>)> {
    let raw = body["text"].as_str().unwrap_or("");
    let html = body["parse_mode"].as_str() == Some("HTML");
    if html && st.reject_html {
        let refusal = "Bad Request: can't parse entities: unsupported start tag at byte offset 0";
        return Err((400, refusal.into(), None));
    }
    let text = if html {
        html::parse(raw).map_err(|e| (400, format!("Bad Request: {e}"), None))?
    } else {
        raw.to_string()
    };
    if text.trim().is_empty() {
        return Err((400, "Bad Request: message text is empty".into(), None));
    }
    if text.encode_utf16().count() > 4096 {
        return Err((400, "Bad Request: message is too long".into(), None));
    }
    Ok((text, html))
}

/// How long until one more call fits the bot-wide window of `per_second` calls.
fn global_wait(global: &mut VecDeque<Instant>, per_second: usize, now: Instant) -> Duration {
    let second = Duration::from_secs(1);
    while global
        .front()
        .is_some_and(|at| now.duration_since(*at) >= second)
    {
        global.pop_front();
    }
    match global.len().checked_sub(per_second) {
        Some(over) => second.saturating_sub(now.duration_since(global[over])),
        None => Duration::ZERO,
    }
}

/// The flood checks for one counted call in `chat`; records it when allowed.
fn spend(st: &mut St, chat: i64) -> Result<(), (i64, String, Option<u64>)> {
    let now = Instant::now();
    let limits = st.limits;
    let mut wait = st
        .floods
        .get(&chat)
        .map_or(Duration::ZERO, |until| *until - now);
    let recent = st.recent.entry(chat).or_default();
    recent.retain(|at| now.duration_since(*at) < limits.group_per.max(limits.min_gap));
    if let Some(last) = recent.last() {
        wait = wait.max(limits.min_gap.saturating_sub(now.duration_since(*last)));
    }
    // Which limit met the call: the chat's, the group's, or the bot-wide one.
    let mut limit = 0;
    if chat < 0 && recent.len() >= limits.group_count {
        let oldest = recent[recent.len() - limits.group_count];
        let group = limits.group_per.saturating_sub(now.duration_since(oldest));
        if group > wait {
            (wait, limit) = (group, 1);
        }
    }
    if wait.is_zero() {
        (wait, limit) = (
            global_wait(&mut st.global, limits.global_per_second, now),
            2,
        );
    }
    if wait.is_zero() {
        st.recent.entry(chat).or_default().push(now);
        st.global.push_back(now);
        return Ok(());
    }
    st.too_many_by_limit[limit] += 1;
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let description = format!("Too Many Requests: retry after {secs}");
    Err((429, description, Some(secs)))
}

fn check_markup(body: &Value) -> Result<Option<Value>, (i64, String, Option<u64>)> {
    let markup = body.get("reply_markup").cloned();
    let rows = markup
        .as_ref()
        .and_then(|m| m["inline_keyboard"].as_array());
    for button in rows
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
    {
        let data = button["callback_data"].as_str().unwrap_or("");
        if button["text"].as_str().unwrap_or("").is_empty() || data.is_empty() || data.len() > 64 {
            return Err((400, "Bad Request: BUTTON_DATA_INVALID".into(), None));
        }
    }
    Ok(markup)
}

fn send_message(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    if st.blocked.contains(&chat) {
        return forbidden(chat);
    }
    let (text, html) = parsed_text(st, body)?;
    let markup = check_markup(body)?;
    let mut reply_to = body["reply_parameters"]["message_id"].as_i64();
    if let Some(to) = reply_to {
        let known =
            st.user_messages.contains_key(&(chat, to)) || st.messages.contains_key(&(chat, to));
        let anyway = body["reply_parameters"]["allow_sending_without_reply"] == json!(true);
        if !known && !anyway {
            return bad("message to be replied not found");
        }
        reply_to = reply_to.filter(|_| known);
    }
    spend(st, chat)?;
    let id = st.next_message;
    st.next_message += 1;
    let thread = body["message_thread_id"].as_i64();
    st.drafts.retain(|(c, _), _| *c != chat);
    let sent = Sent {
        id,
        chat,
        thread,
        reply_to,
        raw: body["text"].as_str().unwrap_or("").to_string(),
        text,
        html,
        markup,
        edits: 0,
    };
    st.messages.insert((chat, id), sent.clone());
    Ok(sent_message(&sent))
}

fn edit_message(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    if st.blocked.contains(&chat) {
        return forbidden(chat);
    }
    let id = body["message_id"].as_i64().unwrap_or(0);
    let (text, html) = parsed_text(st, body)?;
    let markup = check_markup(body)?;
    let raw = body["text"].as_str().unwrap_or("").to_string();
    let Some(sent) = st.messages.get(&(chat, id)) else {
        return bad("message to edit not found");
    };
    if sent.raw == raw && sent.html == html && sent.markup == markup {
        return Err((400, NOT_MODIFIED.into(), None));
    }
    spend(st, chat)?;
    let sent = st
        .messages
        .get_mut(&(chat, id))
        .ok_or((400, "gone".into(), None))?;
    sent.raw = raw;
    sent.text = text;
    sent.html = html;
    sent.markup = markup;
    sent.edits += 1;
    Ok(sent_message(sent))
}

/// Changes only the inline keyboard (none given removes it); counted like any edit.
fn edit_markup(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    let id = body["message_id"].as_i64().unwrap_or(0);
    let markup = check_markup(body)?;
    let Some(sent) = st.messages.get(&(chat, id)) else {
        return bad("message to edit not found");
    };
    if sent.markup == markup {
        return Err((400, NOT_MODIFIED.into(), None));
    }
    spend(st, chat)?;
    let sent = st
        .messages
        .get_mut(&(chat, id))
        .ok_or((400, "gone".into(), None))?;
    sent.markup = markup;
    sent.edits += 1;
    Ok(sent_message(sent))
}

/// Deletes one of the bot's messages.
fn delete_message(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    let id = body["message_id"].as_i64().unwrap_or(0);
    if st.messages.remove(&(chat, id)).is_none() {
        return bad("message to delete not found");
    }
    st.deleted.insert((chat, id));
    Ok(json!(true))
}

fn send_draft(st: &mut St, body: &Value) -> Answer {
    if st.no_drafts {
        return Err((404, "Not Found".into(), None));
    }
    let chat = chat_id(body)?;
    if st.blocked.contains(&chat) {
        return forbidden(chat);
    }
    if chat < 0 {
        return bad("TEXTDRAFT_PEER_INVALID");
    }
    let draft = body["draft_id"].as_i64().unwrap_or(0);
    if draft == 0 {
        return bad("draft_id must be non-zero");
    }
    let (text, _) = parsed_text(st, body)?;
    spend(st, chat)?;
    st.drafts.insert((chat, draft), text);
    if body["can_stop"] == json!(true) {
        st.stoppable.insert((chat, draft));
    }
    Ok(json!(true))
}

fn answer_callback(st: &mut St, body: &Value) -> Answer {
    let id = body["callback_query_id"].as_str().unwrap_or("");
    if body["text"].as_str().unwrap_or("").chars().count() > 200 {
        return bad("MESSAGE_TOO_LONG");
    }
    let late = st
        .pressed_at
        .get(id)
        .is_some_and(|at| at.elapsed() > CALLBACK_TIMEOUT);
    match st.callbacks.get_mut(id) {
        Some(answered) if !*answered && !late => {
            *answered = true;
            Ok(json!(true))
        }
        _ => bad("query is too old and response timeout expired or query id is invalid"),
    }
}

fn chat_member(st: &mut St, body: &Value) -> Answer {
    let chat = chat_id(body)?;
    let user = body["user_id"].as_i64().unwrap_or(0);
    let who = json!({ "id": user, "is_bot": false, "first_name": "Member" });
    if !st.admins.contains(&(chat, user)) {
        return Ok(json!({ "status": "member", "user": who }));
    }
    let mut admin = json!({ "status": "administrator", "user": who, "can_be_edited": false,
        "is_anonymous": false });
    for right in [
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
        "can_pin_messages",
        "can_manage_topics",
    ] {
        admin[right] = json!(true);
    }
    Ok(admin)
}
