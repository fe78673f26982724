//! Attachments on Telegram: photos (captioned, in private chats and groups), images and text
//! sent as documents, a reply to a photo, and the one-line refusals (a model that cannot read
//! images, a file too large, a voice message); images stay byte-identical turn after turn.

use serde_json::json;

use super::{Harness, user_contents};
use crate::fake_telegram::{FakeLimits, Media, User, group, private};
use crate::parts::{data_url, extends, image_urls, jpeg, last_message, png, texts};

const ANN: i64 = 501;

fn ann() -> User {
    User::new(ANN, "Ann")
}

/// Waits until `chat` shows a message reading `text`.
async fn shows(h: &Harness, chat: i64, text: &str) {
    h.tg.wait_for(10, text, |tg| {
        tg.messages(chat).iter().any(|m| m.text == text)
    })
    .await;
}

#[tokio::test]
async fn a_captioned_photo_in_a_private_chat_reaches_the_model_as_an_image_part() {
    let mut h = Harness::new().await;
    let photo = jpeg(1, 3000);
    let media = Media::Photo(photo.clone());
    h.tg.user_sends(&private(&ann()), &ann(), &media, "what is this?", None);
    shows(&h, ANN, "echo: what is this?").await;
    let content = last_message(&h.llm_bodies()[0])["content"].clone();
    let expected = json!([
        { "type": "text", "text": "what is this?" },
        { "type": "image_url", "image_url": { "url": data_url("image/jpeg", &photo) } },
    ]);
    assert_eq!(content, expected);
    assert_eq!(
        h.tg.downloads(),
        ["photos/file_2.jpg"],
        "the largest size only"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_photo_in_a_group_is_read_only_when_its_caption_addresses_the_bot() {
    let mut h = Harness::new().await;
    let chat = group(-100_200, None);
    let photo = jpeg(2, 2000);
    h.tg.user_sends(&chat, &ann(), &Media::Photo(jpeg(3, 10)), "nice view", None);
    let media = Media::Photo(photo.clone());
    h.tg.user_sends(&chat, &ann(), &media, "@parley_bot what is this?", None);
    shows(&h, -100_200, "echo: Ann: what is this?").await;
    h.stop().await;
    let bodies = h.llm_bodies();
    assert_eq!(bodies.len(), 1, "the unaddressed photo is not answered");
    assert_eq!(texts(&last_message(&bodies[0])), ["Ann: what is this?"]);
    assert_eq!(image_urls(&bodies[0]), [data_url("image/jpeg", &photo)]);
    assert_eq!(h.tg.downloads(), ["photos/file_4.jpg"]);
}

#[tokio::test]
async fn an_image_sent_as_a_document_is_sent_as_its_own_type() {
    let mut h = Harness::new().await;
    let image = png(4, 5000);
    let media = Media::document("diagram.png", "image/png", &image);
    h.tg.user_sends(&private(&ann()), &ann(), &media, "explain", None);
    shows(&h, ANN, "echo: explain").await;
    assert_eq!(
        image_urls(&h.llm_bodies()[0]),
        [data_url("image/png", &image)]
    );
    h.stop().await;
}

#[tokio::test]
async fn a_text_file_is_sent_as_its_name_and_a_fenced_block() {
    let mut h = Harness::new().await;
    let media = Media::document("app.log", "text/plain", b"line 1\nERROR boom\n");
    h.tg.user_sends(&private(&ann()), &ann(), &media, "why did it fail?", None);
    h.wait_for_requests(1).await;
    let last = last_message(&h.llm_bodies()[0]);
    let file = "app.log:\n```\nline 1\nERROR boom\n```";
    assert_eq!(texts(&last), ["why did it fail?", file]);
    h.stop().await;
}

#[tokio::test]
async fn a_reply_to_a_photo_brings_the_photo_along() {
    let mut h = Harness::new().await;
    let chat = group(-100_300, None);
    let photo = jpeg(5, 800);
    let bob = User::new(502, "Bob");
    let sent =
        h.tg.user_sends(&chat, &bob, &Media::Photo(photo.clone()), "", None);
    h.tg.user_replies_to_user(&chat, &ann(), "@parley_bot what is in this?", sent);
    shows(&h, -100_300, "echo: Ann: what is in this?").await;
    let body = &h.llm_bodies()[0];
    assert_eq!(image_urls(body), [data_url("image/jpeg", &photo)]);
    h.stop().await;
}

#[tokio::test]
async fn a_model_that_cannot_read_images_gets_the_text_and_the_chat_a_line_saying_so() {
    let env = [("LLM__DEFAULT_MODEL", "grok-3")];
    let mut h = Harness::with_limits(FakeLimits::default(), &env).await;
    let media = Media::Photo(jpeg(6, 100));
    h.tg.user_sends(&private(&ann()), &ann(), &media, "and this?", None);
    let line = "grok-3 cannot read images — switch with /model grok-4 and send it again.";
    shows(&h, ANN, line).await;
    shows(&h, ANN, "echo: and this?").await;
    h.stop().await;
    let bodies = h.llm_bodies();
    assert_eq!(
        user_contents(&bodies[0]),
        ["and this?"],
        "no image part at all"
    );
    assert!(h.tg.calls_of("getFile").is_empty(), "nothing downloaded");
}

#[tokio::test]
async fn a_file_larger_than_the_limit_is_refused_before_it_is_downloaded() {
    let mut h = Harness::new().await;
    let media = Media::document("huge.png", "image/png", &png(7, 12 << 20));
    h.tg.user_sends(&private(&ann()), &ann(), &media, "look", None);
    let line = "huge.png is too large (12.1 MB; I read images up to 10 MB) — send a smaller file.";
    shows(&h, ANN, line).await;
    shows(&h, ANN, "echo: look").await;
    h.stop().await;
    assert!(
        h.tg.calls_of("getFile").is_empty(),
        "the size was known first"
    );
    assert_eq!(user_contents(&h.llm_bodies()[0]), ["look"]);
}

#[tokio::test]
async fn a_file_over_telegrams_download_limit_is_refused_by_get_file_and_told() {
    let env = [("ATTACHMENTS__MAX_IMAGE_BYTES", "31457280")];
    let mut h = Harness::with_limits(FakeLimits::default(), &env).await;
    let media = Media::document("scan.png", "image/png", &png(8, 21_000_000));
    h.tg.user_sends(&private(&ann()), &ann(), &media, "", None);
    let line = "scan.png is too large (I read images up to 19.1 MB) — send a smaller file.";
    shows(&h, ANN, line).await;
    h.stop().await;
    assert_eq!(h.tg.calls_of("getFile").len(), 1);
    assert!(h.tg.downloads().is_empty());
    assert!(h.llm.requests().is_empty(), "nothing was left to answer");
}

#[tokio::test]
async fn a_voice_message_gets_a_line_and_no_request() {
    let mut h = Harness::new().await;
    h.tg.user_sends(&private(&ann()), &ann(), &Media::Voice, "", None);
    let line = "I can't read voice messages — send text, an image or a text file.";
    shows(&h, ANN, line).await;
    h.stop().await;
    assert!(h.llm.requests().is_empty());
    assert!(h.tg.calls_of("getFile").is_empty());
}

#[tokio::test]
async fn three_turns_after_an_image_carry_it_unchanged_and_extend_each_request() {
    let mut h = Harness::new().await;
    let photo = jpeg(9, 4000);
    let media = Media::Photo(photo.clone());
    h.tg.user_sends(&private(&ann()), &ann(), &media, "first", None);
    shows(&h, ANN, "echo: first").await;
    for text in ["second", "third", "fourth"] {
        h.tg.user_writes(&private(&ann()), &ann(), text);
        shows(&h, ANN, &format!("echo: {text}")).await;
    }
    h.stop().await;
    let requests = h.llm.requests();
    assert_eq!(requests.len(), 4);
    let url = data_url("image/jpeg", &photo);
    for request in &requests {
        assert_eq!(
            image_urls(&request.body),
            [url.as_str()],
            "the same bytes each turn"
        );
    }
    for pair in requests.windows(2) {
        assert!(
            extends(&pair[0].raw, &pair[1].raw),
            "each request extends the last"
        );
    }
    assert_eq!(
        h.tg.downloads().len(),
        1,
        "downloaded once, then read from the store"
    );
}
