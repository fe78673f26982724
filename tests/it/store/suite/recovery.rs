//! The contract on replies a crash left streaming: marked partial once, per platform.

use std::sync::Arc;

use parley::engine::event::PlatformKind;
use parley::engine::ports::{ReplyStatus, Role, Store, Usage};

use super::{record, refs, start, telegram, turn};

pub async fn recover_interrupted_marks_streaming_replies_partial_once_oldest_first(
    store: Arc<dyn Store>,
) {
    let topic = telegram("-100").with_thread("3");
    let id = store.conversation(&topic).await.expect("created").id;
    let done = record("done", ReplyStatus::Complete, Usage::default());
    let finished = turn(&*store, id, "7", "earlier", &done).await;
    let reply = start(&*store, id, "7", "go")
        .await
        .expect("streaming")
        .reply;
    store
        .set_reply_messages(reply, &refs(&["101", "102"]))
        .await
        .expect("recorded");
    store
        .set_reply_text(reply, "half of the")
        .await
        .expect("text so far");
    let other_chat = store.conversation(&telegram("7")).await.expect("other").id;
    let later = start(&*store, other_chat, "7", "too")
        .await
        .expect("streaming");

    let elsewhere = store
        .recover_interrupted(PlatformKind::Discord)
        .await
        .expect("other platform");
    assert!(
        elsewhere.is_empty(),
        "another platform's replies are left be"
    );
    let recovered = store
        .recover_interrupted(PlatformKind::Telegram)
        .await
        .expect("recovered");
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [reply, later.reply],
        "oldest first, finished {finished:?} left be"
    );
    assert_eq!(recovered[0].key, topic);
    assert_eq!(recovered[0].platform_messages, refs(&["101", "102"]));
    assert_eq!(
        recovered[0].content, "half of the",
        "the text streamed so far is kept"
    );
    assert_eq!(recovered[1].key, telegram("7"));
    assert!(recovered[1].platform_messages.is_empty());
    assert_eq!(recovered[1].content, "");
    let again = store
        .recover_interrupted(PlatformKind::Telegram)
        .await
        .expect("second");
    assert!(again.is_empty(), "{again:?}");

    // Partial now: the history keeps the text it got to.
    let history = store.history(id).await.expect("history");
    let last = history.last().expect("the recovered reply");
    assert_eq!(
        (last.role, last.content.as_str()),
        (Role::Assistant, "half of the")
    );
}
