//! The contract on files: stored with their user message, read back with the history in the
//! message's order, byte for byte, and kept while any conversation uses them.

use std::sync::Arc;

use parley::engine::attachment::{ImageType, StoredFile};
use parley::engine::ports::{ModelName, ReplyStatus, Store, TurnStart, Usage};

use super::{author, record, telegram};

/// A PNG's first bytes and some more.
fn png(seed: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..=255u8).map(|b| b ^ seed));
    bytes
}

/// A turn by user 7 in `chat`'s conversation with `files`, answered "ok".
async fn turn_with(store: &dyn Store, chat: &str, prompt: &str, files: &[StoredFile]) {
    let key = telegram(chat);
    let context = store.turn_context(&key).await.expect("context");
    let (author, model) = (author("7"), ModelName::new("grok-4"));
    let turn = TurnStart {
        conversation: context.conversation.id,
        create_in: context.new.then_some(&key),
        author: &author,
        content: prompt,
        files,
        model: &model,
    };
    let rows = store.start_turn(&turn).await.expect("turn started");
    let ended = record("ok", ReplyStatus::Complete, Usage::default());
    store
        .finish_reply(rows.reply, &ended)
        .await
        .expect("reply finished");
}

pub async fn files_come_back_with_their_messages_in_order(store: Arc<dyn Store>) {
    let files = [
        StoredFile::image("a.png", ImageType::Png, png(1)),
        StoredFile::text("notes.md", "# Title\n\u{1F600} ok"),
        StoredFile::image("b.png", ImageType::Png, png(2)),
    ];
    turn_with(store.as_ref(), "-1", "look", &files).await;
    turn_with(store.as_ref(), "-1", "and now?", &[]).await;
    let context = store.turn_context(&telegram("-1")).await.expect("context");
    let history = &context.history;
    assert_eq!(history.len(), 4);
    assert_eq!(
        history[0].files, files,
        "byte for byte, in order, with names"
    );
    assert!(history[1].files.is_empty() && history[2].files.is_empty());
    let again = store
        .history(context.conversation.id)
        .await
        .expect("history");
    assert_eq!(again, context.history);
}

pub async fn a_file_another_conversation_uses_outlives_a_reset(store: Arc<dyn Store>) {
    let shared = StoredFile::image("same.png", ImageType::Png, png(3));
    turn_with(
        store.as_ref(),
        "-1",
        "first chat",
        std::slice::from_ref(&shared),
    )
    .await;
    let renamed = StoredFile {
        name: "other-name.png".into(),
        ..shared.clone()
    };
    turn_with(
        store.as_ref(),
        "-2",
        "second chat",
        std::slice::from_ref(&renamed),
    )
    .await;
    store.reset(&telegram("-1")).await.expect("reset");
    let context = store.turn_context(&telegram("-2")).await.expect("context");
    assert_eq!(
        context.history[0].files,
        [renamed],
        "the same bytes, under its own name"
    );
    let fresh = store.turn_context(&telegram("-1")).await.expect("context");
    assert!(fresh.history.is_empty(), "the reset chat starts over");
}
