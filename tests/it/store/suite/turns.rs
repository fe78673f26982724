//! The contract on turns: what a turn reads, what it stores, what history shows.

use std::sync::Arc;

use parley::engine::event::{ChatKey, ConversationId, PlatformKind, UserId};
use parley::engine::ports::{
    MessageRowId, ModelName, ReplyStatus, Role, Store, TurnContext, TurnStart, Usage,
};

use super::{author, record, refs, start, telegram, turn, usage};

/// Three turns by users 7, 8 and 7: "one" answered "first answer", "two" failed, "three"
/// answered partly ("half an").
async fn three_turns(store: &dyn Store, conversation: ConversationId) {
    let none = Usage::default();
    let ended = [
        (
            "7",
            "one",
            record("first answer", ReplyStatus::Complete, none),
        ),
        ("8", "two", record("", ReplyStatus::Failed, none)),
        ("7", "three", record("half an", ReplyStatus::Partial, none)),
    ];
    for (user, prompt, record) in &ended {
        turn(store, conversation, user, prompt, record).await;
    }
}

/// The conversation's history as (role, author, text).
async fn seen(store: &dyn Store, id: ConversationId) -> Vec<(Role, Option<String>, String)> {
    let history = store.history(id).await.expect("history");
    history
        .into_iter()
        .map(|m| (m.role, m.author_name, m.content))
        .collect()
}

fn said(role: Role, author: Option<&str>, text: &str) -> (Role, Option<String>, String) {
    (role, author.map(str::to_string), text.to_string())
}

pub async fn history_leaves_out_failed_and_streaming_replies_and_keeps_order(
    store: Arc<dyn Store>,
) {
    let id = store
        .conversation(&telegram("42"))
        .await
        .expect("created")
        .id;
    three_turns(&*store, id).await;
    start(&*store, id, "8", "four").await.expect("streaming");

    assert_eq!(
        seen(&*store, id).await,
        [
            said(Role::User, Some("user 7"), "one"),
            said(Role::Assistant, None, "first answer"),
            said(Role::User, Some("user 8"), "two"),
            said(Role::User, Some("user 7"), "three"),
            said(Role::Assistant, None, "half an"),
            said(Role::User, Some("user 8"), "four"),
        ]
    );
}

/// What `turn_context` must agree with: the three reads it stands for.
async fn read_separately(store: &dyn Store, key: &ChatKey) -> TurnContext {
    let conversation = store.conversation(key).await.expect("conversation");
    TurnContext {
        new: false,
        settings: store.settings(key).await.expect("settings"),
        history: store.history(conversation.id).await.expect("history"),
        conversation,
    }
}

pub async fn turn_context_is_the_conversation_its_settings_and_its_history_in_one_read(
    store: Arc<dyn Store>,
) {
    let key = telegram("42");
    let topic = key.clone().with_thread("9");
    let id = store.conversation(&key).await.expect("created").id;
    three_turns(&*store, id).await;
    let grok3 = ModelName::new("grok-3");
    store
        .set_model(&key, Some(&grok3))
        .await
        .expect("model set");
    store
        .set_system_prompt(&key, Some("be brief"))
        .await
        .expect("prompt set");

    let context = store.turn_context(&key).await.expect("context");
    assert_eq!(context.conversation.id, id);
    assert_eq!(context.settings.model, Some(grok3));
    assert_eq!(context.settings.system_prompt.as_deref(), Some("be brief"));
    assert_eq!(context.history.len(), 5, "{:?}", context.history);
    assert_eq!(context, read_separately(&*store, &key).await);

    // A topic of the chat is its own place: no conversation yet, no settings, no history of the
    // parent. Reading it stores nothing.
    let in_topic = store.turn_context(&topic).await.expect("topic context");
    assert!(in_topic.new);
    assert_ne!(in_topic.conversation.id, id);
    assert_eq!(in_topic.conversation.key, topic);
    assert_eq!(in_topic.settings, Default::default());
    assert!(in_topic.history.is_empty());
    let again = store.turn_context(&topic).await.expect("topic context");
    assert!(again.new);
    assert_ne!(again.conversation.id, in_topic.conversation.id);

    // After a reset the place keeps its settings and starts with no history.
    let fresh = store.reset(&key).await.expect("reset").id;
    let context = store.turn_context(&key).await.expect("context after reset");
    assert_eq!(context.conversation.id, fresh);
    assert!(context.history.is_empty());
    assert_eq!(context.settings.system_prompt.as_deref(), Some("be brief"));
}

pub async fn first_turns_of_a_new_place_create_one_conversation_with_settings_chosen_before(
    store: Arc<dyn Store>,
) {
    let key = ChatKey::new(PlatformKind::Discord, "new");
    let grok4 = ModelName::new("grok-4");
    store
        .set_model(&key, Some(&grok4))
        .await
        .expect("model set");
    // Fifty turns read the place as new (each with its own fresh id), then all store at once.
    let mut contexts = Vec::new();
    for _ in 0..50 {
        let context = store.turn_context(&key).await.expect("context");
        assert!(context.new);
        assert_eq!(context.settings.model.as_ref(), Some(&grok4));
        assert!(context.history.is_empty());
        contexts.push(context);
    }
    let turns = contexts.into_iter().enumerate().map(|(n, context)| {
        let (store, key, model) = (store.clone(), key.clone(), grok4.clone());
        tokio::spawn(async move {
            let author = author(&n.to_string());
            let turn = TurnStart {
                conversation: context.conversation.id,
                create_in: Some(&key),
                author: &author,
                content: "hello",
                files: &[],
                model: &model,
            };
            store.start_turn(&turn).await
        })
    });
    let mut rows = Vec::new();
    for turn in turns.collect::<Vec<_>>() {
        rows.push(turn.await.expect("task ran").expect("turn started"));
    }
    let stored = rows[0].conversation;
    assert!(rows.iter().all(|r| r.conversation == stored), "{rows:?}");
    let context = store.turn_context(&key).await.expect("context");
    assert!(!context.new);
    assert_eq!(context.conversation.id, stored);
    assert_eq!(store.conversation(&key).await.expect("same").id, stored);
    // Every turn's user message landed in it (the streaming replies are not history yet).
    assert_eq!(context.history.len(), 50);
    assert!(context.history.iter().all(|m| m.role == Role::User));
}

pub async fn concurrent_turns_in_many_chats_all_land(store: Arc<dyn Store>) {
    let chats = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let key = telegram(&format!("chat-{n}"));
            let (author, model) = (author("7"), ModelName::new("m"));
            for i in 0..10 {
                let answer = format!("answer {i}");
                let ended = record(&answer, ReplyStatus::Complete, usage(1, 1, 0, 0));
                // As the engine does: read, then store the turn (creating the place's first).
                let context = store.turn_context(&key).await?;
                assert_eq!(context.new, i == 0);
                let turn = TurnStart {
                    conversation: context.conversation.id,
                    create_in: context.new.then_some(&key),
                    author: &author,
                    content: "q",
                    files: &[],
                    model: &model,
                };
                let rows = store.start_turn(&turn).await?;
                store.finish_reply(rows.reply, &ended).await?;
            }
            store.chat_usage(&key).await
        })
    });
    for chat in chats.collect::<Vec<_>>() {
        let totals = chat.await.expect("task ran").expect("every write landed");
        assert_eq!(totals.replies, 10);
    }
    let user = store
        .user_usage(PlatformKind::Telegram, &UserId::new("7"))
        .await;
    assert_eq!(user.expect("user usage").replies, 200);
}

pub async fn text_so_far_is_recorded_while_streaming_and_left_alone_once_the_reply_ended(
    store: Arc<dyn Store>,
) {
    let key = telegram("42");
    let id = store.conversation(&key).await.expect("created").id;
    let reply = start(&*store, id, "7", "go")
        .await
        .expect("streaming")
        .reply;
    store
        .set_reply_messages(reply, &refs(&["101"]))
        .await
        .expect("messages recorded");
    store
        .set_reply_text(reply, "so far")
        .await
        .expect("text recorded");
    let done = record("the whole answer", ReplyStatus::Complete, Usage::default());
    store.finish_reply(reply, &done).await.expect("finished");

    // A write of the text so far that arrives after the end changes nothing, and is no error.
    store
        .set_reply_text(reply, "so far, late")
        .await
        .expect("a late write is no error");
    let history = seen(&*store, id).await;
    assert_eq!(
        history.last(),
        Some(&said(Role::Assistant, None, "the whole answer"))
    );
}

pub async fn unknown_conversations_and_replies_are_errors_that_store_nothing(
    store: Arc<dyn Store>,
) {
    let stranger = ConversationId::random();
    let error = start(&*store, stranger, "7", "hi")
        .await
        .expect_err("a turn in a conversation never stored");
    assert_eq!(
        error.to_string(),
        format!("database error: no conversation {stranger} is stored")
    );
    assert!(store.history(stranger).await.expect("history").is_empty());

    let unknown = MessageRowId(12345);
    let no_reply = "database error: no reply with row id 12345 is stored";
    let done = record("x", ReplyStatus::Complete, Usage::default());
    let error = store
        .finish_reply(unknown, &done)
        .await
        .expect_err("finishing a reply never stored");
    assert_eq!(error.to_string(), no_reply);
    let error = store
        .set_reply_messages(unknown, &refs(&["1"]))
        .await
        .expect_err("recording the messages of a reply never stored");
    assert_eq!(error.to_string(), no_reply);
    let usage = store.chat_usage(&telegram("42")).await.expect("usage");
    assert_eq!(usage.replies, 0, "nothing was stored");
}
