//! The contract of what the reply controls read and write: the newest reply of a chat, and a
//! reply reopened for a regenerate (its old answer kept) or a continue.

use std::sync::Arc;

use parley::engine::ports::{ReplyStatus, Store};

use super::{record, refs, telegram, turn, usage};

pub async fn the_last_reply_is_the_newest_of_the_current_conversation_and_none_after_a_reset(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let chat = telegram("-300");
    assert_eq!(store.last_reply(&chat).await.expect("read"), None);
    let conversation = store.conversation(&chat).await.expect("created").id;
    let complete = record("first", ReplyStatus::Complete, usage(1, 1, 0, 0));
    turn(store, conversation, "7", "a", &complete).await;
    let cut = record("second, cut", ReplyStatus::Complete, usage(1, 1, 0, 0));
    let cut = parley::engine::ports::ReplyRecord {
        finish_reason: Some("length".into()),
        ..cut
    };
    let second = turn(store, conversation, "7", "b", &cut).await;
    let last = store
        .last_reply(&chat)
        .await
        .expect("read")
        .expect("a reply");
    assert_eq!(last.id, second);
    assert_eq!(
        (last.content.as_str(), last.finish_reason.as_deref()),
        ("second, cut", Some("length"))
    );
    assert_eq!(
        (last.status, last.platform_messages),
        (ReplyStatus::Complete, refs(&["10"]))
    );
    assert_eq!(
        store.last_reply(&telegram("-301")).await.expect("read"),
        None
    );
    store.reset(&chat).await.expect("reset");
    assert_eq!(store.last_reply(&chat).await.expect("read"), None);
    // A chat's answers per request (/n) is one of its settings.
    store.set_n(&chat, Some(3)).await.expect("set");
    assert_eq!(store.settings(&chat).await.expect("read").n, Some(3));
    let context = store.turn_context(&chat).await.expect("read");
    assert_eq!(context.settings.n, Some(3));
    store.set_n(&chat, None).await.expect("cleared");
    assert_eq!(store.settings(&chat).await.expect("read").n, None);
}

pub async fn a_reopened_reply_keeps_its_old_answer_leaves_the_history_and_adds_usage(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let chat = telegram("-302");
    let conversation = store.conversation(&chat).await.expect("created").id;
    let old = record("old answer", ReplyStatus::Complete, usage(10, 5, 0, 0));
    let reply = turn(store, conversation, "7", "q", &old).await;
    store.reopen_reply(reply, true).await.expect("reopened");
    let history = store.history(conversation).await.expect("history");
    assert_eq!(
        history.len(),
        1,
        "the reopened reply is out of the history: {history:?}"
    );
    let again = store.reopen_reply(reply, true).await;
    assert!(again.is_err(), "a streaming reply is not reopened twice");
    let new = record("new answer", ReplyStatus::Complete, usage(10, 7, 10, 0));
    store.finish_reply(reply, &new).await.expect("finished");
    let last = store
        .last_reply(&chat)
        .await
        .expect("read")
        .expect("the reply");
    assert_eq!(last.content, "new answer");
    let alternatives = store.alternatives(reply).await.expect("alternatives");
    assert_eq!(alternatives, ["old answer"]);
    let history = store.history(conversation).await.expect("history");
    assert_eq!(
        history.last().map(|m| m.content.as_str()),
        Some("new answer")
    );
    let counted = store.chat_usage(&chat).await.expect("usage");
    assert_eq!((counted.replies, counted.usage), (1, usage(20, 12, 10, 0)));
    // The set gains the new answer; showing another puts it in the history.
    let added = store
        .add_alternative(reply, "new answer", Some("stop"))
        .await;
    assert_eq!(added.expect("added"), 1);
    let shown = store.show_alternative(reply, 0).await.expect("shown");
    assert_eq!(
        shown,
        Some(("old answer".to_string(), Some("stop".to_string())))
    );
    let history = store.history(conversation).await.expect("history");
    assert_eq!(
        history.last().map(|m| m.content.as_str()),
        Some("old answer")
    );
    assert_eq!(store.show_alternative(reply, 5).await.expect("read"), None);
    // A second regenerate keeps the set as it is; a continue too.
    store.reopen_reply(reply, true).await.expect("reopened");
    let whole = record(
        "old answer, and more",
        ReplyStatus::Complete,
        usage(1, 1, 0, 0),
    );
    store.finish_reply(reply, &whole).await.expect("finished");
    store.reopen_reply(reply, false).await.expect("reopened");
    store.finish_reply(reply, &whole).await.expect("finished");
    let set = store.alternatives(reply).await.expect("read");
    assert_eq!(set, ["old answer", "new answer"]);
}

pub async fn a_continued_answer_takes_its_place_in_the_set(store: Arc<dyn Store>) {
    let store = &*store;
    let chat = telegram("-303");
    let conversation = store.conversation(&chat).await.expect("created").id;
    let first = record("first, cut", ReplyStatus::Complete, usage(1, 1, 0, 0));
    let reply = turn(store, conversation, "7", "q", &first).await;
    store.reopen_reply(reply, true).await.expect("reopened");
    let second = record("second", ReplyStatus::Complete, usage(1, 1, 0, 0));
    store.finish_reply(reply, &second).await.expect("finished");
    store
        .add_alternative(reply, "second", Some("stop"))
        .await
        .expect("added");
    store.show_alternative(reply, 0).await.expect("shown");
    // A continue of the first answer: the set's first becomes the whole text.
    store.reopen_reply(reply, false).await.expect("reopened");
    let whole = record(
        "first, cut and more",
        ReplyStatus::Complete,
        usage(1, 1, 0, 0),
    );
    store.finish_reply(reply, &whole).await.expect("finished");
    let set_again = store.set_alternative(reply, 0, "first, cut and more", Some("stop"));
    set_again.await.expect("replaced");
    store
        .set_alternative(reply, 7, "nowhere", None)
        .await
        .expect("no such answer: nothing");
    let set = store.alternatives(reply).await.expect("read");
    assert_eq!(set, ["first, cut and more", "second"]);
    store.show_alternative(reply, 1).await.expect("shown");
    let back = store.show_alternative(reply, 0).await.expect("shown");
    assert_eq!(
        back,
        Some(("first, cut and more".to_string(), Some("stop".to_string())))
    );
}
