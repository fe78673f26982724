//! Attachments on Discord: what a message (or `/ask`'s `attachment` option) brings along, and
//! downloading it from Discord's CDN with a size cap and timeouts. Only attachment URLs of
//! Discord's CDN (or of the configured proxy) are fetched, and never with the bot token.

use std::sync::Arc;

use serenity::all::{CommandDataOptionValue, CommandInteraction};
use serenity::model::channel::{Attachment as DiscordAttachment, Message};

use crate::engine::attachment::{Attachment, AttachmentKind, FileRef};
use crate::engine::ports::FetchError;
use crate::platform::download;

/// Where Discord serves attachments.
const CDN_HOSTS: [&str; 2] = [
    "https://cdn.discordapp.com/",
    "https://media.discordapp.net/",
];

/// The files a message brings: those of the message it replies to, then its own (Discord's
/// long pastes are `message.txt` attachments), and its stickers as a kind not read.
pub fn attachments(message: &Message) -> Vec<Attachment> {
    let replied = message.referenced_message.as_deref();
    let files = replied.into_iter().chain([message]);
    let mut found: Vec<Attachment> = files
        .flat_map(|m| m.attachments.iter().map(attachment))
        .collect();
    if let Some(sticker) = message.sticker_items.first() {
        found.push(Attachment {
            name: sticker.name.clone(),
            kind: AttachmentKind::Unreadable("stickers"),
            mime: None,
            size: None,
            source: FileRef::new(""),
        });
    }
    found
}

/// One Discord attachment in the engine's terms; a voice message (it has a waveform) is a
/// kind not read.
pub fn attachment(file: &DiscordAttachment) -> Attachment {
    let kind = if file.waveform.is_some() {
        AttachmentKind::Unreadable("voice messages")
    } else {
        AttachmentKind::File
    };
    Attachment {
        name: file.filename.clone(),
        kind,
        mime: file.content_type.clone(),
        size: Some(u64::from(file.size)),
        source: FileRef::new(file.url.clone()),
    }
}

/// Downloads attachments; cheap to clone.
#[derive(Debug, Clone)]
pub struct Cdn {
    client: reqwest::Client,
    /// URL prefixes fetched: Discord's CDN, and the proxy when one is configured.
    allowed: Arc<[String]>,
}

impl Cdn {
    /// Fetches from Discord's CDN and from `proxy` (`discord.proxy_url`), if set.
    pub fn new(proxy: Option<&str>) -> Result<Self, String> {
        let mut allowed: Vec<String> = CDN_HOSTS.iter().map(|h| h.to_string()).collect();
        if let Some(proxy) = proxy {
            allowed.push(format!("{}/", proxy.trim_end_matches('/')));
        }
        Ok(Self {
            client: download::client()?,
            allowed: allowed.into(),
        })
    }

    /// The attachment at `url`, at most `limit` bytes.
    pub async fn fetch(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        if !self
            .allowed
            .iter()
            .any(|prefix| url.starts_with(prefix.as_str()))
        {
            return Err(FetchError::Failed("not a Discord attachment URL".into()));
        }
        let url = reqwest::Url::parse(url)
            .map_err(|_| FetchError::Failed("not a Discord attachment URL".into()))?;
        download::get(&self.client, url, limit).await
    }
}

/// The file given in `/ask`'s `attachment` option, if any.
pub fn ask_attachment(command: &CommandInteraction) -> Vec<Attachment> {
    let data = &command.data;
    let ids = data.options.iter().filter(|o| o.name == "attachment");
    ids.filter_map(|option| match option.value {
        CommandDataOptionValue::Attachment(id) => data.resolved.attachments.get(&id),
        _ => None,
    })
    .map(attachment)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_discords_cdn_and_the_proxy_are_fetched() {
        let cdn = Cdn::new(Some("http://127.0.0.1:9/")).expect("a client");
        let refused = FetchError::Failed("not a Discord attachment URL".into());
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "https://cdn.discordapp.com.evil.example/a.png",
            "https://cdn.discordapp.com@evil.example/a.png",
            "http://127.0.0.10/a.png",
        ] {
            assert_eq!(cdn.fetch(url, 10).await, Err(refused.clone()), "{url}");
        }
        let proxied = cdn
            .fetch("http://127.0.0.1:9/attachments/1/2/a.png", 10)
            .await;
        assert_eq!(proxied, Err(FetchError::Failed("could not connect".into())));
    }
}
