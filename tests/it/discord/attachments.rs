//! Attachments on Discord: an image with a mention, a long paste Discord turned into
//! `message.txt`, `/ask`'s `attachment` option, a reply to a message with an image, and a voice
//! message refused with a line. Downloads go to the CDN URL and never carry the bot token.

use super::{Bot, CHANNEL, GUILD, USER, echo};
use crate::fake_discord::{FakeFile, SlashCommand, UserMessage};
use crate::fake_llm::Script;
use crate::parts::{data_url, image_urls, last_message, png, texts};

/// A WebP's first bytes and some more.
fn webp() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\0\0\0WEBPVP8 ".to_vec();
    bytes.extend((0..600u32).map(|i| (i % 251) as u8));
    bytes
}

fn no_token_sent_to_the_cdn(bot: &Bot) {
    let downloads = bot.discord.downloads();
    assert!(!downloads.is_empty(), "something was downloaded");
    assert!(downloads.iter().all(|d| !d.authorized), "{downloads:?}");
}

#[tokio::test]
async fn an_image_attached_to_a_mention_reaches_the_model() {
    let bot = Bot::start().await;
    let image = png(11, 3000);
    let asked = UserMessage::mention(GUILD, CHANNEL, USER, "what is this?")
        .with_file(FakeFile::new("shot.png", "image/png", &image));
    bot.discord.user_message(asked);
    bot.until_texts(CHANNEL, &[echo("what is this?")]).await;
    let body = bot.last_request();
    assert_eq!(
        texts(&last_message(&body)),
        [format!("user{USER}: what is this?")]
    );
    assert_eq!(image_urls(&body), [data_url("image/png", &image)]);
    no_token_sent_to_the_cdn(&bot);
}

#[tokio::test]
async fn a_long_paste_in_message_txt_is_read_as_text() {
    let bot = Bot::start().await;
    let paste = format!(
        "fn main() {{\n{}}}\n",
        "    println!(\"hi\");\n".repeat(120)
    );
    bot.llm.push(Script::reply("got it"));
    let dm = UserMessage::dm("77", USER, "").with_file(FakeFile::new(
        "message.txt",
        "text/plain; charset=utf-8",
        paste.as_bytes(),
    ));
    bot.discord.user_message(dm);
    bot.until_texts("77", &["got it".to_string()]).await;
    let last = last_message(&bot.last_request());
    assert_eq!(texts(&last), [format!("message.txt:\n```\n{paste}```")]);
    no_token_sent_to_the_cdn(&bot);
}

#[tokio::test]
async fn slash_ask_reads_its_attachment_option() {
    let bot = Bot::start().await;
    let image = webp();
    let ask = SlashCommand::guild(GUILD, CHANNEL, USER, "ask")
        .option("prompt", "describe")
        .attachment(FakeFile::new("cat.webp", "image/webp", &image));
    bot.discord.slash_command(ask);
    bot.until_texts(CHANNEL, &[echo("describe")]).await;
    assert_eq!(
        image_urls(&bot.last_request()),
        [data_url("image/webp", &image)]
    );
    let registered = bot.discord.calls_to("PUT", "/applications/2000/commands");
    let commands = registered[0].body.as_array().unwrap().clone();
    let ask = commands.iter().find(|c| c["name"] == "ask").unwrap();
    let option = &ask["options"][1];
    assert_eq!(
        (option["name"].as_str(), option["type"].as_u64()),
        (Some("attachment"), Some(11))
    );
    no_token_sent_to_the_cdn(&bot);
}

#[tokio::test]
async fn a_reply_to_a_message_with_an_image_brings_the_image_along() {
    let bot = Bot::start().await;
    let image = png(12, 900);
    let shared = UserMessage::guild(GUILD, CHANNEL, "43", "look at this").with_file(FakeFile::new(
        "chart.png",
        "image/png",
        &image,
    ));
    let shared = bot.discord.user_message(shared);
    let asked =
        UserMessage::mention(GUILD, CHANNEL, USER, "what does it show?").replying_to(&shared);
    bot.discord.user_message(asked);
    bot.until_texts(CHANNEL, &[echo("what does it show?")])
        .await;
    assert_eq!(
        image_urls(&bot.last_request()),
        [data_url("image/png", &image)]
    );
}

#[tokio::test]
async fn a_voice_message_gets_a_line_and_no_request() {
    let mut bot = Bot::start().await;
    let dm = UserMessage::dm("78", USER, "").with_file(FakeFile::voice_message());
    bot.discord.user_message(dm);
    let line = "I can't read voice messages — send text, an image or a text file.";
    bot.until_texts("78", &[line.to_string()]).await;
    bot.stop().await;
    assert!(bot.llm.requests().is_empty());
    assert!(bot.discord.downloads().is_empty());
}
