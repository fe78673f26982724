//! Telegram through the Bot API (teloxide): long polling, inbound mapping, streamed replies with
//! drafts and edits, HTML formatting, commands.

pub mod format;
pub mod html;
