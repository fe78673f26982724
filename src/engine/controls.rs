//! The controls of replies in progress: who may stop which streaming reply, and stopping it.
//!
//! A Stop button's data names the stored reply (`stop:<reply row>`), so a press is matched to
//! the reply it was shown on, never to whatever streams in the chat at the time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::command::Command;
use super::event::{ChatKey, UserId};
use super::ports::{Button, MessageRowId};

/// The marker a stopped reply ends with.
pub const STOPPED: &str = "stopped";

/// What a press of a reply control asks for, parsed from the button's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Stop the streaming reply stored as this row.
    Stop(MessageRowId),
    /// Ask again for the reply stored as this row (it must still be the chat's last).
    Regenerate(MessageRowId),
    /// Go on with the reply stored as this row where `max_tokens` cut it.
    Continue(MessageRowId),
}

impl Press {
    /// Parses a button's data; `None` when it is not a reply control's.
    pub fn parse(data: &str) -> Option<Self> {
        let (action, row) = data.split_once(':')?;
        let row = MessageRowId(row.parse().ok()?);
        match action {
            "stop" => Some(Self::Stop(row)),
            "regen" => Some(Self::Regenerate(row)),
            "cont" => Some(Self::Continue(row)),
            _ => None,
        }
    }

    /// The reply the press names.
    pub fn reply(self) -> MessageRowId {
        match self {
            Self::Stop(row) | Self::Regenerate(row) | Self::Continue(row) => row,
        }
    }

    /// The command a press of Regenerate or Continue queues in the chat (Stop acts at once).
    pub fn command(self) -> Option<Command> {
        match self {
            Self::Stop(_) => None,
            Self::Regenerate(row) => Some(Command::Regenerate(Some(row))),
            Self::Continue(row) => Some(Command::Continue(Some(row))),
        }
    }

    /// The button's data (at most 24 bytes: within Telegram's 64 and Discord's 100).
    pub fn data(self) -> String {
        match self {
            Self::Stop(row) => format!("stop:{}", row.0),
            Self::Regenerate(row) => format!("regen:{}", row.0),
            Self::Continue(row) => format!("cont:{}", row.0),
        }
    }
}

/// The Stop button of the reply stored as `reply`.
pub fn stop_button(reply: MessageRowId) -> Button {
    Button {
        label: "⏹ Stop".into(),
        data: Press::Stop(reply).data(),
        stops: true,
    }
}

/// The buttons of a finished reply that is the chat's last: Regenerate, and Continue when the
/// model stopped at `max_tokens` (`finish_reason = length`).
pub fn final_buttons(reply: MessageRowId, finish_reason: Option<&str>) -> Vec<Button> {
    let regenerate = Button {
        label: "🔄 Regenerate".into(),
        data: Press::Regenerate(reply).data(),
        stops: false,
    };
    let more = Button {
        label: "⏩ Continue".into(),
        data: Press::Continue(reply).data(),
        stops: false,
    };
    let cut = finish_reason == Some(LENGTH);
    std::iter::once(regenerate)
        .chain(cut.then_some(more))
        .collect()
}

/// The answer to a control on a reply that is no longer the chat's last (or a reset chat's).
pub const NOT_LAST: &str =
    "That is no longer the last reply here: only the last one can be regenerated or continued.";
/// The answer to a second press while a Regenerate or Continue of the reply is queued.
pub const ALREADY: &str = "Already on it.";
/// What the model is asked when a reply is continued.
pub const CONTINUE_PROMPT: &str =
    "Continue your previous answer exactly where it stopped, without repeating any of it.";

/// The finish reason of a reply `max_tokens` cut.
pub const LENGTH: &str = "length";

/// How a stop request was answered; `text` is the short private answer to the presser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAnswer {
    /// The reply stops now.
    Stopped,
    /// Only the person who asked (or an admin) may stop it.
    NotYours,
    /// Nothing of that is streaming any more.
    NotRunning,
}

impl StopAnswer {
    /// A short sentence for the person who pressed.
    pub fn text(self) -> &'static str {
        match self {
            Self::Stopped => "Stopping.",
            Self::NotYours => "Only the person who asked (or an admin) can stop this reply.",
            Self::NotRunning => "This reply is no longer being written.",
        }
    }
}

/// The stop switch of one streaming reply.
#[derive(Debug, Default)]
pub struct Stopper {
    token: CancellationToken,
    pressed: AtomicBool,
}

impl Stopper {
    /// A switch whose token is cancelled by `parent` (shutdown) as well as by a press.
    pub fn under(parent: &CancellationToken) -> Self {
        Self {
            token: parent.child_token(),
            pressed: AtomicBool::new(false),
        }
    }

    /// Cancelled by a press or by the parent.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// True once someone stopped the reply (not merely a shutdown).
    pub fn pressed(&self) -> bool {
        self.pressed.load(Ordering::SeqCst)
    }

    fn press(&self) {
        self.pressed.store(true, Ordering::SeqCst);
        self.token.cancel();
    }
}

struct Running {
    chat: ChatKey,
    asker: UserId,
    stopper: Arc<Stopper>,
}

/// The replies streaming now, by reply row, and the replies a Regenerate or Continue is
/// queued or running for.
#[derive(Default)]
pub struct Controls {
    running: Mutex<HashMap<MessageRowId, Running>>,
    redoing: Mutex<HashSet<MessageRowId>>,
}

/// Keeps a reply listed as streaming until dropped.
pub struct Listed<'a> {
    controls: &'a Controls,
    reply: MessageRowId,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.controls.lock().remove(&self.reply);
    }
}

impl Controls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageRowId, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists `reply`, asked by `asker` in `chat`, as streaming until the guard drops.
    pub fn list(
        &self,
        reply: MessageRowId,
        chat: &ChatKey,
        asker: &UserId,
        stopper: Arc<Stopper>,
    ) -> Listed<'_> {
        let running = Running {
            chat: chat.clone(),
            asker: asker.clone(),
            stopper,
        };
        self.lock().insert(reply, running);
        Listed {
            controls: self,
            reply,
        }
    }

    /// `user` pressed Stop on `reply` in `chat`; `admin` when they may configure the chat.
    pub fn stop(
        &self,
        reply: MessageRowId,
        chat: &ChatKey,
        user: &UserId,
        admin: bool,
    ) -> StopAnswer {
        let running = self.lock();
        match running.get(&reply) {
            Some(r) if r.chat != *chat => StopAnswer::NotRunning,
            Some(r) if r.asker == *user || admin => {
                r.stopper.press();
                StopAnswer::Stopped
            }
            Some(_) => StopAnswer::NotYours,
            None => StopAnswer::NotRunning,
        }
    }

    /// Claims `reply` for one Regenerate or Continue; false while one is queued or running for
    /// it (a second press of the button does nothing more). [`Controls::release`] ends it.
    pub fn claim(&self, reply: MessageRowId) -> bool {
        let mut redoing = self.redoing.lock().unwrap_or_else(|p| p.into_inner());
        redoing.insert(reply)
    }

    /// The Regenerate or Continue for `reply` is done (or was never queued).
    pub fn release(&self, reply: MessageRowId) {
        let mut redoing = self.redoing.lock().unwrap_or_else(|p| p.into_inner());
        redoing.remove(&reply);
    }

    /// Stops whatever streams in `chat` (a private place whose only user is the asker: a
    /// Telegram draft's own stop control, the terminal's Ctrl-C).
    pub fn stop_in(&self, chat: &ChatKey) -> StopAnswer {
        let running = self.lock();
        let mut found = running.values().filter(|r| r.chat == *chat).peekable();
        if found.peek().is_none() {
            return StopAnswer::NotRunning;
        }
        found.for_each(|r| r.stopper.press());
        StopAnswer::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::PlatformKind;

    #[test]
    fn button_data_names_the_reply_and_parses_back() {
        let data = Press::Stop(MessageRowId(42)).data();
        assert_eq!(data, "stop:42");
        assert_eq!(Press::parse(&data), Some(Press::Stop(MessageRowId(42))));
        assert_eq!(Press::parse("model:grok-3"), None);
        assert_eq!(Press::parse("stop:x"), None);
        let regen = Press::parse(&Press::Regenerate(MessageRowId(3)).data());
        assert_eq!(
            regen.and_then(Press::command),
            Some(Command::Regenerate(Some(MessageRowId(3))))
        );
        let more = Press::parse("cont:4").and_then(Press::command);
        assert_eq!(more, Some(Command::Continue(Some(MessageRowId(4)))));
    }

    #[test]
    fn continue_shows_only_after_a_cut() {
        let labels = |reason| -> Vec<String> {
            let buttons = final_buttons(MessageRowId(5), reason);
            buttons.into_iter().map(|b| b.data).collect()
        };
        assert_eq!(labels(Some("stop")), ["regen:5"]);
        assert_eq!(labels(None), ["regen:5"]);
        assert_eq!(labels(Some("length")), ["regen:5", "cont:5"]);
    }

    #[test]
    fn only_the_asker_or_an_admin_stops_a_reply_and_only_while_it_streams() {
        let controls = Controls::default();
        let chat = ChatKey::new(PlatformKind::Telegram, "-5");
        let (alice, bob) = (UserId::new("1"), UserId::new("2"));
        let stopper = Arc::new(Stopper::default());
        let listed = controls.list(MessageRowId(7), &chat, &alice, stopper.clone());
        let other = ChatKey::new(PlatformKind::Telegram, "-6");
        let reply = MessageRowId(7);
        assert_eq!(
            controls.stop(reply, &other, &alice, true),
            StopAnswer::NotRunning
        );
        assert_eq!(
            controls.stop(reply, &chat, &bob, false),
            StopAnswer::NotYours
        );
        assert!(!stopper.pressed() && !stopper.token().is_cancelled());
        assert_eq!(controls.stop(reply, &chat, &bob, true), StopAnswer::Stopped);
        assert!(stopper.pressed() && stopper.token().is_cancelled());
        drop(listed);
        assert_eq!(
            controls.stop(reply, &chat, &alice, false),
            StopAnswer::NotRunning
        );
        assert_eq!(controls.stop_in(&chat), StopAnswer::NotRunning);
    }

    #[test]
    fn a_reply_is_claimed_for_one_redo_at_a_time() {
        let controls = Controls::default();
        assert!(controls.claim(MessageRowId(1)));
        assert!(!controls.claim(MessageRowId(1)));
        assert!(controls.claim(MessageRowId(2)));
        controls.release(MessageRowId(1));
        assert!(controls.claim(MessageRowId(1)));
    }

    #[test]
    fn a_shutdown_cancels_the_token_without_counting_as_a_press() {
        let shutdown = CancellationToken::new();
        let stopper = Stopper::under(&shutdown);
        shutdown.cancel();
        assert!(stopper.token().is_cancelled());
        assert!(!stopper.pressed());
    }
}
