//! Platform-neutral commands (`/model`, `/reset`, `/system`, `/usage`, `/help`, `/regen`,
//! `/continue`) and their parsing.

use super::ports::MessageRowId;

/// A command a user sent; adapters map their slash commands onto these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Show the current model and the list (`None`), or switch this chat to another one.
    Model(Option<String>),
    /// Start a new conversation with a new conversation id.
    Reset,
    /// Show, set or clear this chat's system prompt.
    System(SystemAction),
    /// Show the tokens used in this chat.
    Usage,
    /// Show what the bot can do.
    Help,
    /// Ask again for the chat's last reply (`/regen`), or for the reply a Regenerate button
    /// names (it must still be the last).
    Regenerate(Option<MessageRowId>),
    /// Go on with the chat's last reply where it was cut (`/continue`), or with the reply a
    /// Continue button names.
    Continue(Option<MessageRowId>),
    /// Show how many answers a message gets (`None`), or set this chat's number (`/n 1..4`;
    /// 0 when the argument was not a number).
    N(Option<u32>),
    /// Show the answer at `index` of the chat's last reply (`/alt N`, N = index + 1), or of the
    /// reply a ◀/▶ button names; `press` numbers button presses (0 for a typed command).
    Show {
        /// The reply a button names; the chat's last when typed.
        reply: Option<MessageRowId>,
        /// Which answer, from 0.
        index: usize,
        /// The press's number, so that only the newest of several queued presses shows.
        press: u64,
    },
}

/// What `/system` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemAction {
    /// Show the system prompt in force.
    Show,
    /// Replace this chat's system prompt.
    Set(String),
    /// Go back to the configured default.
    Clear,
}

impl Command {
    /// True for commands that change a chat's settings, which groups restrict to admins.
    pub fn changes_settings(&self) -> bool {
        matches!(
            self,
            Self::Model(Some(_))
                | Self::System(SystemAction::Set(_) | SystemAction::Clear)
                | Self::N(Some(_))
        )
    }

    /// Parses a text command such as `/model grok-4` or `/system clear`.
    ///
    /// Returns `None` when `text` is not a known command (it is then a prompt). A `@botname`
    /// suffix on the command word (Telegram groups) is ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let rest = text.strip_prefix('/')?;
        let (word, arg) = match rest.split_once(char::is_whitespace) {
            Some((word, arg)) => (word, arg.trim()),
            None => (rest, ""),
        };
        let word = word.split('@').next().unwrap_or(word).to_ascii_lowercase();
        let arg = (!arg.is_empty()).then(|| arg.to_string());
        match word.as_str() {
            "model" => Some(Self::Model(arg)),
            "reset" | "new" => Some(Self::Reset),
            "system" => Some(Self::System(match arg.as_deref() {
                None => SystemAction::Show,
                Some("clear") => SystemAction::Clear,
                Some(_) => SystemAction::Set(arg.unwrap_or_default()),
            })),
            "usage" => Some(Self::Usage),
            "help" | "start" => Some(Self::Help),
            "regen" | "regenerate" => Some(Self::Regenerate(None)),
            "continue" => Some(Self::Continue(None)),
            "n" => Some(Self::N(arg.map(|a| a.parse().unwrap_or(0)))),
            "alt" => Some(Self::Show {
                reply: None,
                index: arg
                    .as_deref()
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1))
                    .unwrap_or(usize::MAX),
                press: 0,
            }),
            _ => None,
        }
    }
}

/// The help text, in plain Markdown that every platform can show.
pub const HELP: &str = "\
I answer with a language model and remember this chat's conversation. Send a photo, an image \
or a text file with your question and I read it too.

/model — show the current model and the choices; /model NAME switches this chat
/reset — forget the conversation and start a new one
/system — show the system prompt; /system TEXT sets it; /system clear restores the default
/usage — tokens used in this chat
/regen — ask again for my last reply (its 🔄 Regenerate button does the same)
/continue — go on with my last reply where it was cut (its ⏩ Continue button)
/n N — how many answers each message gets, 1 to 4, browsed with ◀ ▶ (in groups: admins)
/alt N — show answer N of my last reply, once it has several (its ◀ and ▶ buttons)
/help — this text

While I write a reply, its ⏹ Stop button stops it (for whoever asked, or an admin); the text so \
far stays.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_with_and_without_arguments() {
        assert_eq!(Command::parse("/model"), Some(Command::Model(None)));
        assert_eq!(
            Command::parse("/model  grok-4 "),
            Some(Command::Model(Some("grok-4".into())))
        );
        assert_eq!(Command::parse("/reset@parley_bot"), Some(Command::Reset));
        assert_eq!(
            Command::parse("/system be brief"),
            Some(Command::System(SystemAction::Set("be brief".into())))
        );
        assert_eq!(
            Command::parse("/system clear"),
            Some(Command::System(SystemAction::Clear))
        );
        assert_eq!(
            Command::parse("/system"),
            Some(Command::System(SystemAction::Show))
        );
        assert_eq!(Command::parse("/USAGE"), Some(Command::Usage));
        assert_eq!(Command::parse("/regen"), Some(Command::Regenerate(None)));
        assert_eq!(Command::parse("/continue"), Some(Command::Continue(None)));
        let second = Command::Show {
            reply: None,
            index: 1,
            press: 0,
        };
        assert_eq!(Command::parse("/alt 2"), Some(second));
        assert_eq!(Command::parse("/n 3"), Some(Command::N(Some(3))));
        assert_eq!(Command::parse("/n many"), Some(Command::N(Some(0))));
        assert!(Command::N(Some(2)).changes_settings() && !Command::N(None).changes_settings());
    }

    #[test]
    fn text_that_is_not_a_command_is_a_prompt() {
        assert_eq!(Command::parse("hello /model"), None);
        assert_eq!(Command::parse("/unknown thing"), None);
        assert_eq!(Command::parse("/"), None);
    }

    #[test]
    fn only_switching_and_setting_change_settings() {
        assert!(!Command::Model(None).changes_settings());
        assert!(Command::Model(Some("x".into())).changes_settings());
        assert!(Command::System(SystemAction::Clear).changes_settings());
        assert!(!Command::System(SystemAction::Show).changes_settings());
        assert!(!Command::Reset.changes_settings());
    }
}
