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
        "ask" => return string_option(options, "prompt").map(Slash::Ask),
        _ => return None,
    };
    Some(Slash::Command(command))
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
        let kind = if value.is_boolean() { 5 } else { 3 };
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
    fn model_choices_stay_within_discords_limit() {
        let models: Vec<ModelName> = (0..40).map(|i| ModelName::new(format!("m{i}"))).collect();
        let json = serde_json::to_value(&definitions(&models)[0]).unwrap();
        assert_eq!(json["options"][0]["choices"].as_array().unwrap().len(), 25);
    }
}
