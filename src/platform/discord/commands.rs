//! The slash commands: their definitions for registration, and their mapping onto the engine's
//! neutral commands.

use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandOptionType, CreateCommand,
    CreateCommandOption,
};

use crate::engine::command::{Command, SystemAction};
use crate::engine::ports::ModelName;

/// Discord allows at most this many choices per option.
const MAX_CHOICES: usize = 25;

/// What a slash command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slash {
    /// A neutral command; its answer is ephemeral.
    Command(Command),
    /// `/ask prompt`: a prompt answered in the channel through the interaction.
    Ask(String),
    /// `/regen`, `/continue`, `/alt`: a command whose result is the last reply, changed in the
    /// channel's own messages; the interaction only gets a short private acknowledgement.
    Reply(Command),
}

impl Slash {
    /// What a `Reply` command says privately once it is queued.
    pub fn queued(command: &Command) -> &'static str {
        match command {
            Command::Regenerate(_) => "Regenerating the last reply.",
            Command::Continue(_) => "Continuing the last reply.",
            _ => "Showing that answer of the last reply.",
        }
    }
}

/// The commands to register; `/model`'s choices are `models`.
pub fn definitions(models: &[ModelName]) -> Vec<CreateCommand> {
    let string = |name: &str, description: &str| {
        CreateCommandOption::new(CommandOptionType::String, name, description)
    };
    let model = models
        .iter()
        .take(MAX_CHOICES)
        .fold(string("name", "The model to switch to"), |option, m| {
            option.add_string_choice(m.as_str(), m.as_str())
        });
    vec![
        CreateCommand::new("model")
            .description("Show this chat's model, or switch it")
            .add_option(model),
        CreateCommand::new("reset").description("Forget this conversation and start a new one"),
        CreateCommand::new("system")
            .description("Show, set or clear this chat's system prompt")
            .add_option(string("prompt", "The new system prompt"))
            .add_option(CreateCommandOption::new(
                CommandOptionType::Boolean,
                "clear",
                "Go back to the default system prompt",
            )),
        CreateCommand::new("usage").description("Tokens used in this chat"),
        CreateCommand::new("help").description("What this bot can do"),
        CreateCommand::new("regen").description("Ask again for the last reply, in its place"),
        CreateCommand::new("continue")
            .description("Go on with the last reply where the model's length limit cut it"),
        CreateCommand::new("alt")
            .description("Show another answer of the last reply")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "number", "Which answer")
                    .min_int_value(1)
                    .required(true),
            ),
        CreateCommand::new("n")
            .description("Show or set how many answers each message gets here")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "count", "1 to 4")
                    .min_int_value(1)
                    .max_int_value(4),
            ),
        CreateCommand::new("ask")
            .description("Ask the model; the answer streams here")
            .add_option(string("prompt", "Your question").required(true))
            .add_option(CreateCommandOption::new(
                CommandOptionType::Attachment,
                "attachment",
                "An image or a text file to ask about",
            )),
    ]
}

fn string_option(options: &[CommandDataOption], name: &str) -> Option<String> {
    let option = options.iter().find(|o| o.name == name)?;
    match &option.value {
        CommandDataOptionValue::String(value) if !value.trim().is_empty() => {
            Some(value.trim().to_string())
        }
        _ => None,
    }
}

fn int_option(options: &[CommandDataOption], name: &str) -> Option<i64> {
    let option = options.iter().find(|o| o.name == name)?;
    match option.value {
        CommandDataOptionValue::Integer(value) => Some(value),
        _ => None,
    }
}

fn flag_option(options: &[CommandDataOption], name: &str) -> bool {
    let option = options.iter().find(|o| o.name == name);
    option.is_some_and(|o| matches!(o.value, CommandDataOptionValue::Boolean(true)))
}

/// Maps a slash command by name and options; `None` for unknown ones.
pub fn parse(name: &str, options: &[CommandDataOption]) -> Option<Slash> {
    let command = match name {
        "model" => Command::Model(string_option(options, "name")),
        "reset" => Command::Reset,
        "system" => Command::System(system_action(options)),
        "usage" => Command::Usage,
        "help" => Command::Help,
        "n" => Command::N(int_option(options, "count").map(count)),
        "ask" => return string_option(options, "prompt").map(Slash::Ask),
        "regen" => return Some(Slash::Reply(Command::Regenerate(None))),
        "continue" => return Some(Slash::Reply(Command::Continue(None))),
        "alt" => {
            let number = int_option(options, "number")?;
            return Some(Slash::Reply(Command::Show {
                reply: None,
                index: usize::try_from(number).ok()?.checked_sub(1)?,
                press: 0,
            }));
        }
        _ => return None,
    };
    Some(Slash::Command(command))
}

/// `/n`'s count as the engine takes it: out of range is 0, which it refuses with the range.
fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn system_action(options: &[CommandDataOption]) -> SystemAction {
    if flag_option(options, "clear") {
        return SystemAction::Clear;
    }
    match string_option(options, "prompt") {
        Some(prompt) if prompt.eq_ignore_ascii_case("clear") => SystemAction::Clear,
        Some(prompt) => SystemAction::Set(prompt),
        None => SystemAction::Show,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, value: serde_json::Value) -> CommandDataOption {
        let kind = match value {
            serde_json::Value::Bool(_) => 5,
            serde_json::Value::Number(_) => 4,
            _ => 3,
        };
        let json = serde_json::json!({ "name": name, "type": kind, "value": value });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn slash_commands_map_onto_neutral_commands() {
        let name = [option("name", "grok-3".into())];
        assert_eq!(
            parse("model", &name),
            Some(Slash::Command(Command::Model(Some("grok-3".into()))))
        );
        assert_eq!(
            parse("model", &[]),
            Some(Slash::Command(Command::Model(None)))
        );
        let clear = [option("clear", true.into())];
        assert_eq!(
            parse("system", &clear),
            Some(Slash::Command(Command::System(SystemAction::Clear)))
        );
        let prompt = [option("prompt", "hi".into())];
        assert_eq!(parse("ask", &prompt), Some(Slash::Ask("hi".into())));
        assert_eq!(parse("ask", &[]), None);
        assert_eq!(parse("unknown", &[]), None);
    }

    #[test]
    fn the_reply_controls_and_n_have_slash_commands() {
        assert_eq!(
            parse("regen", &[]),
            Some(Slash::Reply(Command::Regenerate(None)))
        );
        assert_eq!(
            parse("continue", &[]),
            Some(Slash::Reply(Command::Continue(None)))
        );
        let second = Command::Show {
            reply: None,
            index: 1,
            press: 0,
        };
        let number = |n: i64| [option("number", n.into())];
        assert_eq!(parse("alt", &number(2)), Some(Slash::Reply(second)));
        assert_eq!(parse("alt", &number(0)), None);
        assert_eq!(parse("alt", &[]), None);
        let count = |n: i64| [option("count", n.into())];
        assert_eq!(
            parse("n", &count(3)),
            Some(Slash::Command(Command::N(Some(3))))
        );
        assert_eq!(
            parse("n", &count(-1)),
            Some(Slash::Command(Command::N(Some(0))))
        );
        assert_eq!(parse("n", &[]), Some(Slash::Command(Command::N(None))));
    }

    #[test]
    fn model_choices_stay_within_discords_limit() {
        let models: Vec<ModelName> = (0..40).map(|i| ModelName::new(format!("m{i}"))).collect();
        let json = serde_json::to_value(&definitions(&models)[0]).unwrap();
        assert_eq!(json["options"][0]["choices"].as_array().unwrap().len(), 25);
    }
}
