//! The bot's commands as Telegram shows them: the setMyCommands list, the help text and the
//! /model keyboard with its callback data.

use teloxide::types::{BotCommand, InlineKeyboardButton, InlineKeyboardMarkup};

use crate::engine::ports::ModelName;

/// Callback data of a model button starts with this.
const MODEL_DATA: &str = "model:";
/// Telegram's limit on callback data, in bytes.
const MAX_DATA: usize = 64;

/// The commands and their descriptions, in menu order.
const COMMANDS: &[(&str, &str)] = &[
    ("ask", "Ask the model (in groups): /ask <question>"),
    ("model", "Show or switch this chat's model"),
    ("new", "Start a new conversation"),
    ("reset", "Forget the conversation and start over"),
    (
        "system",
        "Show or set the system prompt (/system clear resets it)",
    ),
    ("usage", "Tokens used in this chat"),
    ("regen", "Ask again for my last reply"),
    ("continue", "Go on with my last reply where it was cut"),
    ("alt", "Show answer N of my last reply: /alt N"),
    ("n", "Answers per message, 1 to 4: /n N"),
    ("help", "What I do and my commands"),
];

/// The list registered with setMyCommands.
pub fn bot_commands() -> Vec<BotCommand> {
    COMMANDS
        .iter()
        .map(|(name, description)| BotCommand::new(*name, *description))
        .collect()
}

/// The answer to /start and /help, in Markdown.
pub fn help_text(private: bool) -> String {
    let how = if private {
        "Write to me and I answer with a language model, streaming the reply as it is written."
    } else {
        "Mention me, reply to one of my messages, or use /ask, and I answer with a language \
         model, streaming the reply as it is written."
    };
    let mut text = format!(
        "{how} I remember this chat's conversation. Send a photo, an image or a text file \
         with your question (as its caption) and I read it too.\n"
    );
    for (name, description) in COMMANDS {
        text.push_str(&format!("\n/{name} — {description}"));
    }
    text.push_str("\n\nIn groups, /model and /system changes are for admins.");
    text.push_str(
        "\n\nWhile I write a reply, its ⏹ Stop button stops it (for whoever asked, or an \
         admin); the text so far stays.",
    );
    text
}

/// One button per model, the current one ticked.
pub fn model_keyboard(models: &[ModelName], current: Option<&str>) -> InlineKeyboardMarkup {
    let rows = models
        .iter()
        .filter(|m| MODEL_DATA.len() + m.as_str().len() <= MAX_DATA)
        .map(|model| {
            let name = model.as_str();
            let label = match current == Some(name) {
                true => format!("✓ {name}"),
                false => name.to_string(),
            };
            vec![InlineKeyboardButton::callback(
                label,
                format!("{MODEL_DATA}{name}"),
            )]
        });
    InlineKeyboardMarkup::new(rows)
}

/// The model a button's callback data picks.
pub fn picked_model(data: &str) -> Option<&str> {
    data.strip_prefix(MODEL_DATA)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_buttons_carry_the_model_in_their_data() {
        let models = [ModelName::new("grok-3"), ModelName::new("grok-4")];
        let keyboard = model_keyboard(&models, Some("grok-4"));
        assert_eq!(keyboard.inline_keyboard.len(), 2);
        assert_eq!(keyboard.inline_keyboard[1][0].text, "✓ grok-4");
        assert_eq!(picked_model("model:grok-3"), Some("grok-3"));
        assert_eq!(picked_model("other"), None);
    }

    #[test]
    fn command_names_are_valid_for_telegram() {
        for command in bot_commands() {
            assert!(command.command.chars().all(|c| c.is_ascii_lowercase()));
        }
    }
}
