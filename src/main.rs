//! The `parley` binary: parse arguments, load settings, hand over to the app.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley::app::{self, App};
use parley::settings::{Config, Purpose, Settings, SettingsError};

/// A self-hosted chat bot for Discord and Telegram that streams answers from an
/// OpenAI-compatible API and keeps every conversation in SQLite.
///
/// Configuration: config/default.toml (built in), then --config FILE, then environment
/// variables PARLEY__SECTION__KEY (e.g. PARLEY__LLM__API_KEY, PARLEY__TELEGRAM__TOKEN).
#[derive(Parser)]
#[command(name = "parley", version)]
struct Cli {
    /// An extra TOML config file, layered over the defaults.
    #[arg(long, global = true, env = "PARLEY_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every enabled platform (the default).
    Run,
    /// Talk to the bot in this terminal: checks the API key, a model and a prompt without
    /// Discord or Telegram. Stored like any chat, so running it again continues.
    Chat {
        /// The conversation to continue (each name is its own conversation).
        #[arg(long, default_value = "default")]
        chat: String,
        /// Switch this chat to a model from llm.models first.
        #[arg(long)]
        model: Option<String>,
    },
    /// Validate the config, open and migrate the database, and print what would start.
    Check {
        /// Also call the completion API and each enabled platform once.
        #[arg(long)]
        online: bool,
    },
    /// Ask the running bot's /healthz (for Docker's HEALTHCHECK); exits 0 when healthy.
    #[command(hide = true)]
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Cmd::Run);
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => return config_error(&error),
    };
    let task = match Task::parse(command, &settings) {
        Ok(task) => task,
        Err(error) => return config_error(&error),
    };
    parley::telemetry::init(&settings.log);
    let runtime = match app::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("parley: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("parley: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A bad config stops start-up with one line naming the key, and exit code 2.
fn config_error(error: &SettingsError) -> ExitCode {
    eprintln!("parley: {error}");
    ExitCode::from(2)
}

/// A command with the configuration it runs with.
enum Task {
    /// `parley run`.
    Run(Config),
    /// `parley chat`.
    Chat(Config, app::ChatOptions),
    /// `parley check [--online]`.
    Check(Config, bool),
    /// `parley healthcheck`, on `http.listen`.
    Healthcheck(Option<SocketAddr>),
}

impl Task {
    /// Parses the settings for `command`.
    fn parse(command: Cmd, settings: &Settings) -> Result<Self, SettingsError> {
        let config = |purpose| Config::from_settings(settings, purpose);
        let task = match command {
            Cmd::Run => Self::Run(config(Purpose::Run)?),
            Cmd::Chat { chat, model } => {
                Self::Chat(config(Purpose::Chat)?, app::ChatOptions { chat, model })
            }
            Cmd::Check { online } => Self::Check(config(Purpose::Check)?, online),
            Cmd::Healthcheck => Self::Healthcheck(settings.http_listen()?),
        };
        Ok(task)
    }

    /// Runs the command to its end.
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Run(config) => {
                let grace = config.grace;
                let app = App::start(config).await?;
                app::stop_signal().await;
                app.shutdown(grace).await;
                Ok(())
            }
            Self::Chat(config, options) => app::chat(config, options).await,
            Self::Check(config, online) => {
                let report = app::check(&config, online).await?;
                println!("{}", report.lines.join("\n"));
                match report.ok {
                    true => Ok(()),
                    false => Err(anyhow::anyhow!("an online check failed")),
                }
            }
            Self::Healthcheck(listen) => app::healthcheck(listen)
                .await
                .map(|body| println!("{body}")),
        }
    }
}
