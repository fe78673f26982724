//! `parley chat`: a conversation in the terminal, through the same engine and store as the
//! platforms, without Discord or Telegram.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio_util::sync::CancellationToken;

use crate::engine::command::Command;
use crate::engine::controls::{Controls, StopAnswer};
use crate::engine::event::{Author, ChatKey, Content, Incoming, PlatformKind, UserId};
use crate::engine::ports::{ModelName, Started};
use crate::engine::turn::Engine;
use crate::platform::console::{self, ConsolePlatform};
use crate::settings::Config;

use super::{build_engine, open_store, recover_store};

/// Options of `parley chat`.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// The console chat's name: each name is its own conversation.
    pub chat: String,
    /// Switch the chat to this model first.
    pub model: Option<String>,
}

/// `parley chat`: a conversation in the terminal, stored like any other.
pub async fn chat(config: Config, options: ChatOptions) -> anyhow::Result<()> {
    let database = open_store(&config.store, None).await?;
    let store = database.store();
    recover_store(&*store, &[PlatformKind::Console]).await?;
    let engine = build_engine(&config, store.clone())?;
    let key = ChatKey::new(PlatformKind::Console, &options.chat);
    if let Some(model) = &options.model {
        let model = ModelName::new(model);
        let models = &config.engine.models;
        if !models.contains(&model) {
            let names: Vec<&str> = models.iter().map(ModelName::as_str).collect();
            bail!(
                "--model {model} is not in llm.models; use one of: {}",
                names.join(", ")
            );
        }
        store.set_model(&key, Some(&model)).await?;
    }
    let conversation = store.conversation(&key).await?;
    eprintln!(
        "Parley chat `{}` (conversation {}). Type a message; /attach PATH adds a file to the next \
         one; /help for commands; /stop or Ctrl-C stops a reply; Ctrl-D to quit.",
        options.chat, conversation.id
    );
    let console = ConsolePlatform::stdout();
    let cancel = CancellationToken::new();
    tokio::spawn(interrupts(engine.clone(), key.clone(), cancel.clone()));
    let author = Author {
        id: UserId::new("local"),
        display_name: std::env::var("USER").unwrap_or_else(|_| "you".into()),
    };
    let prompt = std::io::stdin().is_terminal();
    let mut input = Input {
        lines: BufReader::new(tokio::io::stdin()).lines(),
        waiting: VecDeque::new(),
        ended: false,
    };
    let mut attachments = Vec::new();
    loop {
        if prompt {
            eprint!("> ");
        }
        let line = match input.waiting.pop_front() {
            Some(line) => Some(line),
            None if input.ended => None,
            None => tokio::select! {
                _ = cancel.cancelled() => break,
                line = input.lines.next_line() => line.context("reading stdin")?,
            },
        };
        let Some(line) = line else { break };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(path) = text.strip_prefix("/attach") {
            attach(path.trim(), &mut attachments).await;
            continue;
        }
        if text == STOP {
            println!("Nothing is being written; /stop (or Ctrl-C) stops a reply while it streams.");
            continue;
        }
        let content = match Command::parse(text) {
            Some(command) => Content::Command(command),
            None if text.starts_with('/') => {
                println!("Unknown command {text}; /help lists the commands.");
                continue;
            }
            None => Content::Prompt(text.to_string()),
        };
        let incoming = Incoming {
            key: key.clone(),
            author: author.clone(),
            attachments: match content {
                Content::Prompt(_) => std::mem::take(&mut attachments),
                Content::Command(_) => Vec::new(),
            },
            content,
            private: true,
            may_configure: true,
            reply_to: None,
            received_at: std::time::Instant::now(),
        };
        // Kept nowhere: nothing to tell when the turn starts.
        let started = Started::new(None);
        let handled = engine.handle(&incoming, &console, &cancel, &started);
        input.during(handled, engine.controls(), &key).await?;
        if cancel.is_cancelled() {
            break;
        }
    }
    database.close().await;
    Ok(())
}

/// `/attach PATH`: the file goes with the next message.
async fn attach(path: &str, attachments: &mut Vec<crate::engine::attachment::Attachment>) {
    if path.is_empty() {
        println!("Usage: /attach PATH — the file goes with your next message.");
        return;
    }
    match console::attachment(path).await {
        Ok(attachment) => {
            println!(
                "Attached {}; it goes with your next message.",
                attachment.name
            );
            attachments.push(attachment);
        }
        Err(problem) => println!("{problem}"),
    }
}

/// The terminal's stop command: typed while a reply streams, it stops the reply.
const STOP: &str = "/stop";

/// The terminal's lines: read while a reply streams too, so `/stop` can act; other lines
/// typed meanwhile wait their turn.
struct Input {
    lines: Lines<BufReader<Stdin>>,
    waiting: VecDeque<String>,
    ended: bool,
}

impl Input {
    /// Waits for `handled` (one turn), stopping the reply when `/stop` is typed meanwhile.
    async fn during(
        &mut self,
        handled: impl Future<Output = Option<crate::engine::reply::ReplyOutcome>>,
        controls: &Controls,
        key: &ChatKey,
    ) -> anyhow::Result<()> {
        tokio::pin!(handled);
        loop {
            tokio::select! {
                _ = &mut handled => return Ok(()),
                line = self.lines.next_line(), if !self.ended => {
                    match line.context("reading stdin")? {
                        Some(line) if line.trim() == STOP => drop(controls.stop_in(key)),
                        Some(line) => self.waiting.push_back(line),
                        None => self.ended = true,
                    }
                }
            }
        }
    }
}

/// Ctrl-C stops the reply streaming in `key`; with none streaming, it ends the chat.
async fn interrupts(engine: Arc<Engine>, key: ChatKey, quit: CancellationToken) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if engine.controls().stop_in(&key) == StopAnswer::NotRunning {
            quit.cancel();
            return;
        }
    }
}
