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
    /// Show the reply's answer at this index (◀ and ▶).
    Show(MessageRowId, usize),
}

impl Press {
    /// Parses a button's data; `None` when it is not a reply control's.
    pub fn parse(data: &str) -> Option<Self> {
        let (action, row) = data.split_once(':')?;
        if action == "alt" {
            let (row, index) = row.split_once('.')?;
            return Some(Self::Show(
                MessageRowId(row.parse().ok()?),
                index.parse().ok()?,
            ));
        }
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
            Self::Stop(row) | Self::Regenerate(row) | Self::Continue(row) | Self::Show(row, _) => {
                row
            }
        }
    }

    /// The command a press of Regenerate, Continue, ◀ or ▶ queues in the chat (Stop acts at
    /// once); a ◀ or ▶ press is numbered `press`, so only the newest one shows.
    pub fn command(self, press: u64) -> Option<Command> {
        match self {
            Self::Stop(_) => None,
            Self::Regenerate(row) => Some(Command::Regenerate(Some(row))),
            Self::Continue(row) => Some(Command::Continue(Some(row))),
            Self::Show(row, index) => Some(Command::Show {
                reply: Some(row),
                index,
                press,
            }),
        }
    }

    /// The button's data (at most 24 bytes: within Telegram's 64 and Discord's 100).
    pub fn data(self) -> String {
        match self {
            Self::Stop(row) => format!("stop:{}", row.0),
            Self::Regenerate(row) => format!("regen:{}", row.0),
            Self::Continue(row) => format!("cont:{}", row.0),
            Self::Show(row, index) => format!("alt:{}.{index}", row.0),
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

/// The buttons of a finished reply that is the chat's last: with several answers "◀ k/N ▶"
/// (`browse`: the shown index and the count), Regenerate, and Continue when the model stopped at
/// `max_tokens` (`finish_reason = length`).
pub fn final_buttons(
    reply: MessageRowId,
    finish_reason: Option<&str>,
    browse: Option<(usize, usize)>,
) -> Vec<Button> {
    let browse = browse
        .filter(|(_, count)| *count > 1)
        .map(|(shown, count)| {
            let show = |label: String, index: usize| Button {
                label,
                data: Press::Show(reply, index).data(),
                stops: false,
            };
            [
                show("◀".into(), (shown + count - 1) % count),
                show(format!("{}/{count}", shown + 1), shown),
                show("▶".into(), (shown + 1) % count),
            ]
        });
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
    let controls = std::iter::once(regenerate).chain(cut.then_some(more));
    browse.into_iter().flatten().chain(controls).collect()
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
    /// The newest ◀/▶ press per reply.
    shows: Mutex<HashMap<MessageRowId, u64>>,
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

    /// Numbers a ◀/▶ press on arrival, in the order presses arrive (before anything that
    /// waits), so that only the newest of several queued presses shows; 0 for other presses.
    pub fn arrived(&self, press: Press) -> u64 {
        let Press::Show(row, _) = press else {
            return 0;
        };
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        let newest = shows.entry(row).or_default();
        *newest += 1;
        *newest
    }

    /// The command a press of Regenerate, Continue, ◀ or ▶ queues: a Regenerate or Continue
    /// claims its reply ([`ALREADY`] while one is queued or running); a ◀/▶ press carries the
    /// number it [`arrived`](Controls::arrived) with. A Stop is no queued command.
    pub fn queue(&self, press: Press, number: u64) -> Result<Command, &'static str> {
        match press {
            Press::Stop(_) => return Err(NOT_LAST),
            Press::Regenerate(row) | Press::Continue(row) if !self.claim(row) => {
                return Err(ALREADY);
            }
            _ => {}
        }
        press.command(number).ok_or(NOT_LAST)
    }

    /// False when a newer ◀/▶ press than `press` on `reply` is queued: this one need not show.
    pub fn is_newest_show(&self, reply: MessageRowId, press: u64) -> bool {
        let shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        press == 0 || shows.get(&reply).is_none_or(|newest| *newest == press)
    }

    /// A queued command did not get into the chat's queue: its claim ends.
    pub fn unqueued(&self, command: &Command) {
        if let Command::Regenerate(Some(row)) | Command::Continue(Some(row)) = command {
            self.release(*row);
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
            regen.and_then(|p| p.command(0)),
            Some(Command::Regenerate(Some(MessageRowId(3))))
        );
        let more = Press::parse("cont:4").and_then(|p| p.command(0));
        assert_eq!(more, Some(Command::Continue(Some(MessageRowId(4)))));
        let show = Press::parse(&Press::Show(MessageRowId(5), 2).data());
        assert_eq!(show, Some(Press::Show(MessageRowId(5), 2)));
    }

    #[test]
    fn continue_shows_only_after_a_cut() {
        let labels = |reason, browse| -> Vec<String> {
            let buttons = final_buttons(MessageRowId(5), reason, browse);
            buttons.into_iter().map(|b| b.data).collect()
        };
        assert_eq!(labels(Some("stop"), None), ["regen:5"]);
        assert_eq!(labels(None, Some((0, 1))), ["regen:5"]);
        assert_eq!(labels(Some("length"), None), ["regen:5", "cont:5"]);
        let browsing = labels(Some("stop"), Some((0, 3)));
        assert_eq!(browsing, ["alt:5.2", "alt:5.0", "alt:5.1", "regen:5"]);
        let labels = final_buttons(MessageRowId(5), None, Some((2, 3)));
        let labels: Vec<&str> = labels.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels[..3], ["◀", "3/3", "▶"]);
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
    fn only_the_newest_of_several_queued_shows_shows() {
        let controls = Controls::default();
        let (one, two) = (
            Press::Show(MessageRowId(1), 1),
            Press::Show(MessageRowId(1), 0),
        );
        let (first, second) = (controls.arrived(one), controls.arrived(two));
        // Queued out of order, as concurrent handlers may.
        let second = controls.queue(two, second);
        let first = controls.queue(one, first);
        let number = |c: Result<Command, _>| match c {
            Ok(Command::Show { press, .. }) => press,
            _ => 0,
        };
        let (first, second) = (number(first), number(second));
        assert!(!controls.is_newest_show(MessageRowId(1), first));
        assert!(controls.is_newest_show(MessageRowId(1), second));
        assert!(
            controls.is_newest_show(MessageRowId(1), 0),
            "a typed /alt always shows"
        );
        assert!(
            controls
                .queue(Press::Regenerate(MessageRowId(1)), 0)
                .is_ok()
        );
        assert_eq!(
            controls.queue(Press::Regenerate(MessageRowId(1)), 0),
            Err(ALREADY)
        );
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
