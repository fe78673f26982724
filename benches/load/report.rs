//! Turns the fakes' logs into the metrics: latencies from the fakes' timestamps,
//! writes and 429s from their call logs, exactness from what the chats show.

use std::time::Duration;

use parley::platform::telegram::html;
use tokio::time::Instant;

use super::drive::{Fakes, Side, Turn};

/// One accepted write (send, edit or draft) as a fake saw it.
#[derive(Debug, Clone)]
pub struct Write {
    /// The chat (Telegram id or Discord channel).
    pub chat: i64,
    /// When it arrived.
    pub at: Instant,
    /// The text it made visible.
    pub text: String,
    /// A draft: shown while streaming, replaced by the final message.
    pub draft: bool,
}

/// Accepted writes of both fakes, and the arrival times of the calls each global limit counts.
pub struct Logs {
    writes: Vec<Write>,
    telegram_counted: Vec<Instant>,
    discord_counted: Vec<Instant>,
    /// 429s answered by the Telegram fake and the Discord fake.
    pub too_many: (usize, usize),
}

impl Logs {
    /// Reads both fakes' logs.
    pub fn read(fakes: &Fakes) -> Self {
        let mut writes = Vec::new();
        let mut telegram_counted = Vec::new();
        for call in fakes.tg.calls() {
            let method = call.method.as_str();
            let write = matches!(
                method,
                "sendmessage" | "editmessagetext" | "sendmessagedraft"
            );
            if !write || call.error.is_some() {
                continue;
            }
            telegram_counted.push(call.at);
            let raw = call.body["text"].as_str().unwrap_or("");
            let text = if call.body["parse_mode"] == "HTML" {
                html::parse(raw).unwrap_or_default()
            } else {
                raw.to_string()
            };
            let chat = call.chat().unwrap_or(0);
            let draft = method == "sendmessagedraft";
            writes.push(Write {
                chat,
                at: call.at,
                text,
                draft,
            });
        }
        let mut discord_counted = Vec::new();
        // The first few 429s, to see what met them (the count is in the table).
        let mut printed = 0;
        for call in fakes.dc.calls() {
            let exempt =
                call.path.starts_with("/interactions") || call.path.starts_with("/webhooks");
            if call.status == 429 {
                printed += 1;
                if printed <= 3 {
                    eprintln!("Discord 429: {} {} {}", call.method, call.path, call.body);
                }
            }
            if exempt || call.status == 429 {
                continue;
            }
            discord_counted.push(call.at);
            let segments: Vec<&str> = call.path.trim_matches('/').split('/').collect();
            let message = matches!(segments.as_slice(), ["channels", _, "messages", ..]);
            if !message || call.status != 200 || !matches!(call.method.as_str(), "POST" | "PATCH") {
                continue;
            }
            let chat = segments[1].parse().unwrap_or(0);
            let text = call.body["content"].as_str().unwrap_or("").to_string();
            writes.push(Write {
                chat,
                at: call.at,
                text,
                draft: false,
            });
        }
        writes.sort_by_key(|w| w.at);
        telegram_counted.sort();
        discord_counted.sort();
        let too_many = (fakes.tg.too_many_requests(), fakes.dc.rate_limited());
        if too_many != (0, 0) {
            let (chat, group, bot) = fakes.tg.too_many_by_limit();
            let global = fakes.dc.rate_limited_global();
            let route = too_many.1 - global;
            eprintln!(
                "429s by limit: Telegram a chat's {chat}, a group's {group}, bot-wide {bot}; \
                 Discord a route's {route}, bot-wide {global}"
            );
        }
        Self {
            writes,
            telegram_counted,
            discord_counted,
            too_many,
        }
    }

    /// The accepted writes in `chat`, in order.
    pub fn writes_in(&self, chat: i64) -> impl Iterator<Item = &Write> + '_ {
        self.writes.iter().filter(move |w| w.chat == chat)
    }

    /// The accepted writes of a turn, in order.
    fn writes_of<'a>(&'a self, turn: &'a Turn) -> impl Iterator<Item = &'a Write> + 'a {
        let (start, end) = turn.window;
        self.writes
            .iter()
            .filter(move |w| w.chat == turn.conversation.chat && w.at >= start && w.at <= end)
    }

    /// True when the platform's global window was (nearly) full at `at`, as the fake saw it: a
    /// call made then waits for the bot-wide budget.
    fn global_busy(&self, side: Side, at: Instant) -> bool {
        let times = match side {
            Side::Telegram => &self.telegram_counted,
            Side::Discord => &self.discord_counted,
        };
        let limit = super::limits::global_rate(side == Side::Telegram);
        let from = times.partition_point(|t| *t + Duration::from_secs(1) <= at);
        let to = times.partition_point(|t| *t <= at);
        // The adapters keep the limit over a window 10 % longer (jitter room): 80 % is full.
        (to - from) * 10 >= limit * 8
    }
}

/// What one reply measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The reply went to Telegram.
    pub telegram: bool,
    /// The round (0 for the conversations' first message).
    pub round: usize,
    /// Delivered by the fake platform → request at the fake model.
    pub ingest: Option<Duration>,
    /// Telegram: how long the message waited for a getUpdates to ask for it.
    pub waited_for_poll: Option<Duration>,
    /// When the fake model sent the first chunk: the chat was ready for its first text.
    pub ready: Option<Instant>,
    /// First chunk sent → first write carrying it.
    pub first: Option<Duration>,
    /// The first chunk came while the platform's global budget was full.
    pub first_paced: bool,
    /// Last chunk sent → final text accepted.
    pub last: Option<Duration>,
    /// Accepted writes (sends, edits, drafts).
    pub writes: usize,
    /// Messages the reply occupies.
    pub messages: usize,
    /// The chat shows exactly the model's text (in the platform's rendering).
    pub exact: bool,
}

/// Measures one reply.
pub fn sample(fakes: &Fakes, logs: &Logs, turn: &Turn) -> Sample {
    let timing = fakes.llm.timing(&turn.tag);
    let (delivered, waited_for_poll) = match turn.conversation.side {
        Side::Telegram => {
            let (chat, id) = (turn.conversation.chat, turn.message.parse().unwrap_or(0));
            (
                fakes.tg.delivered(chat, id),
                fakes.tg.waited_for_poll(chat, id),
            )
        }
        Side::Discord => (fakes.dc.delivered(&turn.message), None),
    };
    let ingest = match (delivered, timing) {
        (Some(at), Some(t)) => Some(t.received.saturating_duration_since(at)),
        _ => None,
    };
    let writes: Vec<&Write> = logs.writes_of(turn).collect();
    let head: String = turn.text.chars().take(4).collect();
    let first_at = timing.and_then(|t| t.first);
    let first_write = writes.iter().find(|w| w.text.starts_with(&head));
    let first = first_at
        .zip(first_write)
        .map(|(at, w)| w.at.saturating_duration_since(at));
    let last_at = timing.and_then(|t| t.last);
    let final_write = writes.iter().find(|w| !w.draft && w.text == turn.visible);
    let last = last_at
        .zip(final_write)
        .map(|(at, w)| w.at.saturating_duration_since(at));
    Sample {
        telegram: turn.conversation.side == Side::Telegram,
        round: turn
            .tag
            .rsplit('t')
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        ingest,
        waited_for_poll,
        ready: first_at,
        first,
        first_paced: first_at.is_some_and(|at| logs.global_busy(turn.conversation.side, at)),
        last,
        writes: writes.len(),
        messages: turn.shown.len(),
        exact: turn.shown.concat() == turn.visible,
    }
}

/// The `p`-th percentile (0..=100) of `values`, in milliseconds.
pub fn percentile(values: &[Duration], p: f64) -> Option<f64> {
    let mut sorted: Vec<Duration> = values.to_vec();
    sorted.sort();
    let last = sorted.len().checked_sub(1)?;
    let rank = ((p / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)].as_secs_f64() * 1000.0)
}

/// The p50 and p99 of `values`, in milliseconds.
pub fn p50_p99(values: &[Duration]) -> (Option<f64>, Option<f64>) {
    (percentile(values, 50.0), percentile(values, 99.0))
}
