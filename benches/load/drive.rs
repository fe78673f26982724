//! Drives the conversations: each round sends one message to every conversation (spread over
//! the ramp), then waits until every reply shows its final text or the round times out.

use std::time::Duration;

use parley::platform::telegram::{format, html};
use tokio::time::{Instant, sleep, sleep_until};

use super::it::fake_discord::{FakeDiscord, UserMessage};
use super::it::fake_telegram::{FakeTelegram, User, private};
use super::llm::{FakeLlm, reply_text};

/// Which fake a conversation lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A private chat with its own user.
    Telegram,
    /// A guild channel of its own.
    Discord,
}

/// One conversation: by default even ones on Telegram, odd ones on Discord.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Its number.
    pub index: usize,
    /// Its platform.
    pub side: Side,
    /// The Telegram chat (and user) id or the Discord channel id.
    pub chat: i64,
    /// The Discord guild of the channel: every other Discord conversation is in a guild of
    /// shard 1 of two (the fake gateway sends a guild's events to shard `(id >> 22) % count`).
    pub guild: u64,
}

impl Conversation {
    /// Conversation `index` of the run: on `only` if given, else Telegram for an even index and
    /// Discord for an odd one.
    pub fn new(index: usize, only: Option<Side>) -> Self {
        let side = match only {
            Some(side) => side,
            None if index.is_multiple_of(2) => Side::Telegram,
            None => Side::Discord,
        };
        let chat = match side {
            Side::Telegram => 10_000 + index as i64,
            Side::Discord => 50_000 + index as i64,
        };
        // The how-manieth Discord conversation this is, to alternate the shards.
        let ordinal = if only.is_some() { index } else { index / 2 };
        let guild = (2 + (ordinal % 2) as u64) << 22;
        Self {
            index,
            side,
            chat,
            guild,
        }
    }

    /// The tag of turn `turn`, which the fake model reads from the message.
    pub fn tag(&self, turn: usize) -> String {
        format!("c{}t{turn}", self.index)
    }
}

/// One reply to check and measure.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The conversation.
    pub conversation: Conversation,
    /// The tag of the turn.
    pub tag: String,
    /// The model's text.
    pub text: String,
    /// What the platform should show: the Telegram rendering, or the text itself on Discord.
    pub visible: String,
    /// The user message as the fake knows it: Telegram message id, or Discord snowflake.
    pub message: String,
    /// The bot messages the chat held before this turn.
    pub before: usize,
    /// When the round of this turn started and ended (the window of its calls).
    pub window: (Instant, Instant),
    /// The texts of the bot messages the turn added, at the end of its round.
    pub shown: Vec<String>,
}

/// The fakes of one run.
pub struct Fakes {
    /// Telegram.
    pub tg: FakeTelegram,
    /// Discord.
    pub dc: FakeDiscord,
    /// The completion server.
    pub llm: FakeLlm,
    /// Characters of every reply.
    pub reply_chars: usize,
}

/// What Telegram shows for `markdown` when the adapter's HTML is accepted.
pub fn telegram_rendering(markdown: &str) -> String {
    html::parse(&format::to_html(markdown)).unwrap_or_else(|_| markdown.to_string())
}

impl Fakes {
    /// The texts of the bot's messages in the conversation's chat, oldest first.
    pub fn texts(&self, conversation: &Conversation) -> Vec<String> {
        match conversation.side {
            Side::Telegram => {
                let messages = self.tg.messages(conversation.chat).into_iter();
                messages.map(|m| m.text).collect()
            }
            Side::Discord => self.dc.texts(&conversation.chat.to_string()),
        }
    }

    /// Writes turn `turn` of `conversation` as its user.
    pub fn send(&self, conversation: &Conversation, turn: usize) -> Turn {
        let tag = conversation.tag(turn);
        let prompt = format!("#{tag}# please answer at length");
        let before = self.texts(conversation).len();
        let message = match conversation.side {
            Side::Telegram => {
                let user = User::new(conversation.chat, "Load");
                let id = self.tg.user_writes(&private(&user), &user, &prompt);
                id.to_string()
            }
            Side::Discord => {
                let channel = conversation.chat.to_string();
                let author = (900_000 + conversation.index).to_string();
                let message = UserMessage::mention(
                    &conversation.guild.to_string(),
                    &channel,
                    &author,
                    &prompt,
                );
                self.dc.user_message(message)
            }
        };
        let text = reply_text(&tag, self.reply_chars);
        let visible = match conversation.side {
            Side::Telegram => telegram_rendering(&text),
            Side::Discord => text.clone(),
        };
        let now = Instant::now();
        Turn {
            conversation: conversation.clone(),
            tag,
            text,
            visible,
            message,
            before,
            window: (now, now),
            shown: Vec::new(),
        }
    }

    /// The texts of the bot messages added since `turn` was sent.
    pub fn added(&self, turn: &Turn) -> Vec<String> {
        let texts = self.texts(&turn.conversation);
        texts.get(turn.before..).unwrap_or_default().to_vec()
    }
}

/// Runs one round: sends turn `turn` to every conversation over `ramp`, waits for the replies
/// up to `limit`, and returns the turns with their call window.
pub async fn round(
    fakes: &Fakes,
    conversations: &[Conversation],
    turn: usize,
    ramp: Duration,
    limit: Duration,
) -> Vec<Turn> {
    let start = Instant::now();
    let count = conversations.len().max(1) as u32;
    let mut turns = Vec::new();
    for (i, conversation) in conversations.iter().enumerate() {
        sleep_until(start + ramp * i as u32 / count).await;
        turns.push(fakes.send(conversation, turn));
    }
    let mut pending: Vec<usize> = (0..turns.len()).collect();
    let deadline = start + limit;
    while !pending.is_empty() && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
        pending.retain(|&i| fakes.added(&turns[i]).concat() != turns[i].visible);
    }
    // Let the last calls of the round settle into the fakes' logs.
    sleep(Duration::from_millis(300)).await;
    let end = Instant::now();
    for turn in &mut turns {
        turn.window = (start, end);
        turn.shown = fakes.added(turn);
    }
    turns
}
