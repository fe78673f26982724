//! The `parley` binary: parse arguments, load settings, hand over to the app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley::app;
use parley::settings::{Purpose, Settings};

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
    let purpose = match command {
        Cmd::Run => Purpose::Run,
        Cmd::Chat { .. } => Purpose::Chat,
        Cmd::Check { .. } => Purpose::Check,
        Cmd::Healthcheck => Purpose::Healthcheck,
    };
    let settings = match Settings::load(cli.config.as_deref(), purpose) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("parley: {error}");
            return ExitCode::from(2);
        }
    };
    parley::telemetry::init(&settings.log);
    let runtime = match app::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("parley: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Cmd::Run => app::run(settings).await,
            Cmd::Chat { chat, model } => {
                app::chat(settings, app::ChatOptions { chat, model }).await
            }
            Cmd::Check { online } => app::check(&settings, online).await.and_then(|report| {
                println!("{}", report.lines.join("\n"));
                match report.ok {
                    true => Ok(()),
                    false => Err(anyhow::anyhow!("an online check failed")),
                }
            }),
            Cmd::Healthcheck => app::healthcheck(&settings)
                .await
                .map(|body| println!("{body}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("parley: {error:#}");
            ExitCode::FAILURE
        }
    }
}
