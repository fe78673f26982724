//! The SQLite store against real database files in temporary folders.

use std::path::Path;

use parley::engine::event::{Author, ChatKey, ConversationId, MessageRef, PlatformKind, UserId};
use parley::engine::ports::{
    MessageRowId, ModelName, ReplyRecord, ReplyStatus, Role, Store, StoreError, TurnContext,
    TurnRows, TurnStart, Usage, UsageTotals,
};
use parley::store::{INTERRUPTED, SqliteStore};
use tempfile::TempDir;

async fn open(dir: &TempDir) -> SqliteStore {
    open_at(&dir.path().join("parley.db")).await
}

async fn open_at(path: &Path) -> SqliteStore {
    let url = format!("sqlite://{}", path.display());
    SqliteStore::open(&url).await.expect("the store opens")
}

fn telegram(chat: &str) -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, chat)
}

fn author(id: &str) -> Author {
    Author {
        id: UserId::new(id),
        display_name: format!("user {id}"),
    }
}

fn refs(ids: &[&str]) -> Vec<MessageRef> {
    ids.iter().map(|id| MessageRef::new(*id)).collect()
}

fn record(content: &str, status: ReplyStatus, usage: Usage) -> ReplyRecord {
    ReplyRecord {
        content: content.into(),
        status,
        reason: (status != ReplyStatus::Complete).then(|| "upstream closed the stream".into()),
        platform_messages: refs(&["10"]),
        usage,
    }
}

fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
    }
}

/// Starts a turn by `user` in the stored `conversation`: its user message and streaming reply.
async fn start(
    store: &SqliteStore,
    conversation: ConversationId,
    user: &str,
    prompt: &str,
) -> Result<TurnRows, StoreError> {
    let (author, model) = (author(user), ModelName::new("grok-4"));
    let turn = TurnStart {
        conversation,
        create_in: None,
        author: &author,
        content: prompt,
        model: &model,
    };
    store.start_turn(&turn).await
}

/// Stores one user turn and its reply, ended as `record` says.
async fn turn(
    store: &SqliteStore,
    conversation: ConversationId,
    user: &str,
    prompt: &str,
    ended: &ReplyRecord,
) -> MessageRowId {
    let rows = start(store, conversation, user, prompt)
        .await
        .expect("turn started");
    assert_eq!(rows.conversation, conversation);
    let reply = rows.reply;
    store
        .finish_reply(reply, ended)
        .await
        .expect("reply finished");
    reply
}

#[tokio::test]
async fn conversation_id_is_stable_across_close_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = telegram("42");
    let store = open(&dir).await;
    let first = store.conversation(&key).await.expect("created");
    assert_eq!(store.conversation(&key).await.expect("found"), first);
    store.close().await;

    let reopened = open(&dir).await;
    assert_eq!(
        reopened.conversation(&key).await.expect("found").id,
        first.id
    );
}

#[tokio::test]
async fn reset_gives_a_new_id_and_keeps_the_old_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let key = telegram("42");
    let old = store.conversation(&key).await.expect("created").id;
    let done = record("hello there", ReplyStatus::Complete, Usage::default());
    turn(&store, old, "7", "hi", &done).await;

    let new = store.reset(&key).await.expect("reset");
    assert_ne!(new.id, old);
    assert_eq!(new.key, key);
    assert_eq!(store.conversation(&key).await.expect("found").id, new.id);
    assert!(store.history(new.id).await.expect("history").is_empty());
    assert_eq!(store.history(old).await.expect("history").len(), 2);
}

#[tokio::test]
async fn reset_of_an_unseen_chat_starts_its_first_conversation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let key = telegram("new");
    let started = store.reset(&key).await.expect("reset");
    assert_eq!(store.conversation(&key).await.expect("found"), started);
}

#[tokio::test]
async fn threads_are_separate_conversations_from_their_parent_chat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let chat = telegram("-100");
    let topic = chat.clone().with_thread("5");
    let other_topic = chat.clone().with_thread("6");
    let in_chat = store.conversation(&chat).await.expect("chat").id;
    let in_topic = store.conversation(&topic).await.expect("topic");
    let in_other = store
        .conversation(&other_topic)
        .await
        .expect("other topic")
        .id;
    assert_ne!(in_chat, in_topic.id);
    assert_ne!(in_topic.id, in_other);
    assert_eq!(in_topic.key, topic);

    store.reset(&topic).await.expect("reset topic");
    assert_eq!(store.conversation(&chat).await.expect("chat").id, in_chat);
}

#[tokio::test]
async fn the_same_chat_id_on_two_platforms_is_two_conversations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let on_telegram = store.conversation(&telegram("1")).await.expect("telegram");
    let discord = ChatKey::new(PlatformKind::Discord, "1");
    let on_discord = store.conversation(&discord).await.expect("discord");
    assert_ne!(on_telegram.id, on_discord.id);
}

/// Three turns by users 7, 8 and 7: "one" answered "first answer", "two" failed, "three"
/// answered partly ("half an").
async fn three_turns(store: &SqliteStore, conversation: ConversationId) {
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

#[tokio::test]
async fn history_leaves_out_failed_and_streaming_replies_and_keeps_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let id = store
        .conversation(&telegram("42"))
        .await
        .expect("created")
        .id;
    three_turns(&store, id).await;
    start(&store, id, "8", "four").await.expect("streaming");

    let history = store.history(id).await.expect("history");
    let seen: Vec<(Role, Option<&str>, &str)> = history
        .iter()
        .map(|m| (m.role, m.author_name.as_deref(), m.content.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Role::User, Some("user 7"), "one"),
            (Role::Assistant, None, "first answer"),
            (Role::User, Some("user 8"), "two"),
            (Role::User, Some("user 7"), "three"),
            (Role::Assistant, None, "half an"),
            (Role::User, Some("user 8"), "four"),
        ]
    );
}

/// What `turn_context` must agree with: the three reads it stands for.
async fn read_separately(store: &SqliteStore, key: &ChatKey) -> TurnContext {
    let conversation = store.conversation(key).await.expect("conversation");
    TurnContext {
        new: false,
        settings: store.settings(key).await.expect("settings"),
        history: store.history(conversation.id).await.expect("history"),
        conversation,
    }
}

#[tokio::test]
async fn turn_context_is_the_conversation_its_settings_and_its_history_in_one_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let key = telegram("42");
    let topic = ChatKey::new(PlatformKind::Telegram, "42").with_thread("9");
    let id = store.conversation(&key).await.expect("created").id;
    three_turns(&store, id).await;
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
    assert_eq!(context, read_separately(&store, &key).await);

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

#[tokio::test]
async fn first_turns_of_a_new_place_create_one_conversation_with_settings_chosen_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
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

#[tokio::test]
async fn recover_interrupted_marks_streaming_replies_partial_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topic = telegram("-100").with_thread("3");
    let (reply, finished) = {
        let store = open(&dir).await;
        let id = store.conversation(&topic).await.expect("created").id;
        let done = record("done", ReplyStatus::Complete, Usage::default());
        let finished = turn(&store, id, "7", "earlier", &done).await;
        let reply = start(&store, id, "7", "go").await.expect("streaming").reply;
        store
            .set_reply_messages(reply, &refs(&["101", "102"]))
            .await
            .expect("recorded");
        store
            .set_reply_text(reply, "half of the")
            .await
            .expect("text so far");
        store.close().await;
        (reply, finished)
    };

    let store = open(&dir).await;
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
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].id, reply);
    assert_ne!(recovered[0].id, finished);
    assert_eq!(recovered[0].key, topic);
    assert_eq!(recovered[0].platform_messages, refs(&["101", "102"]));
    assert_eq!(
        recovered[0].content, "half of the",
        "the text streamed so far is kept"
    );
    assert!(
        store
            .recover_interrupted(PlatformKind::Telegram)
            .await
            .expect("second")
            .is_empty()
    );

    let (status, reason) = status_of(&dir, reply).await;
    assert_eq!(status, "partial");
    assert_eq!(reason.as_deref(), Some(INTERRUPTED));
}

/// Reads a reply's status and reason straight from the file, beside the store.
async fn status_of(dir: &TempDir, reply: MessageRowId) -> (String, Option<String>) {
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connects");
    sqlx::query_as("SELECT status, failure_reason FROM messages WHERE id = ?1")
        .bind(reply.0)
        .fetch_one(&pool)
        .await
        .expect("row exists")
}

#[tokio::test]
async fn usage_is_summed_per_chat_over_conversations_and_per_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let group = telegram("-100");
    let first = store.conversation(&group).await.expect("created").id;
    let complete = |u| record("answer", ReplyStatus::Complete, u);
    turn(&store, first, "7", "a", &complete(usage(100, 10, 50, 2))).await;
    turn(&store, first, "8", "b", &complete(usage(200, 20, 150, 0))).await;
    let second = store.reset(&group).await.expect("reset").id;
    turn(&store, second, "7", "c", &complete(usage(300, 30, 0, 5))).await;
    let elsewhere = store
        .conversation(&telegram("-200"))
        .await
        .expect("other")
        .id;
    turn(&store, elsewhere, "7", "d", &complete(usage(1, 1, 1, 1))).await;
    let discord = ChatKey::new(PlatformKind::Discord, "9");
    let on_discord = store.conversation(&discord).await.expect("discord").id;
    turn(
        &store,
        on_discord,
        "7",
        "e",
        &complete(usage(1000, 1000, 0, 0)),
    )
    .await;

    let chat = store.chat_usage(&group).await.expect("chat usage");
    assert_eq!(
        chat,
        UsageTotals {
            replies: 3,
            usage: usage(600, 60, 200, 7)
        }
    );
    let user = store
        .user_usage(PlatformKind::Telegram, &UserId::new("7"))
        .await;
    assert_eq!(
        user.expect("user usage"),
        UsageTotals {
            replies: 3,
            usage: usage(401, 41, 51, 8)
        }
    );
    let nobody = store
        .user_usage(PlatformKind::Telegram, &UserId::new("0"))
        .await;
    assert_eq!(nobody.expect("no usage"), UsageTotals::default());
}

#[tokio::test]
async fn settings_are_set_and_cleared_per_chat_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let chat = telegram("42");
    let topic = chat.clone().with_thread("1");
    assert_eq!(
        store.settings(&chat).await.expect("defaults"),
        Default::default()
    );

    let model = ModelName::new("grok-4-fast-reasoning");
    store
        .set_model(&chat, Some(&model))
        .await
        .expect("model set");
    store
        .set_system_prompt(&chat, Some("Be brief."))
        .await
        .expect("prompt set");
    let set = store.settings(&chat).await.expect("settings");
    assert_eq!(set.model, Some(model));
    assert_eq!(set.system_prompt.as_deref(), Some("Be brief."));
    assert_eq!(
        store.settings(&topic).await.expect("topic"),
        Default::default()
    );

    store.set_model(&chat, None).await.expect("model cleared");
    let cleared = store.settings(&chat).await.expect("settings");
    assert_eq!(cleared.model, None);
    assert_eq!(cleared.system_prompt.as_deref(), Some("Be brief."));
}

#[tokio::test]
async fn fifty_concurrent_first_calls_yield_one_conversation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let key = ChatKey::new(PlatformKind::Discord, "busy");
    let calls = (0..50).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.conversation(&key).await })
    });
    let mut ids = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        ids.push(call.await.expect("task ran").expect("conversation").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn opening_creates_the_missing_parent_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a").join("b").join("parley.db");
    let store = open_at(&path).await;
    store.ping().await.expect("answers");
    assert!(path.exists());
}

#[tokio::test]
async fn plain_paths_and_sqlite_colon_urls_open_the_same_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("parley.db");
    let key = telegram("42");
    let by_plain = SqliteStore::open(&path.display().to_string())
        .await
        .expect("plain");
    let id = by_plain.conversation(&key).await.expect("created").id;
    by_plain.close().await;
    let by_url = SqliteStore::open(&format!("sqlite:{}", path.display()))
        .await
        .expect("url");
    assert_eq!(by_url.conversation(&key).await.expect("found").id, id);
}

#[tokio::test]
async fn a_file_database_runs_in_wal_mode_with_foreign_keys_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let pragmas = store.pragmas().await.expect("pragmas");
    assert_eq!(pragmas.journal_mode, "wal");
    assert!(pragmas.foreign_keys);
    assert_eq!(pragmas.busy_timeout_ms, 5000);
}

#[tokio::test]
async fn unknown_conversations_and_replies_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let stranger = ConversationId::random();
    assert!(start(&store, stranger, "7", "hi").await.is_err());
    let done = record("x", ReplyStatus::Complete, Usage::default());
    assert!(
        store
            .finish_reply(MessageRowId(12345), &done)
            .await
            .is_err()
    );
    assert!(
        store
            .set_reply_messages(MessageRowId(12345), &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn integrity_check_says_ok() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    assert_eq!(store.integrity_check().await.expect("checked"), "ok");
}

#[tokio::test]
async fn an_in_memory_store_keeps_its_data_while_open() {
    let store = SqliteStore::open("sqlite::memory:").await.expect("opens");
    let key = telegram("42");
    let id = store.conversation(&key).await.expect("created").id;
    start(&store, id, "7", "hi").await.expect("stored");
    assert_eq!(store.conversation(&key).await.expect("found").id, id);
    assert_eq!(store.history(id).await.expect("history").len(), 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![b'x'; 8192]).expect("written");
    let url = format!("sqlite://{}", path.display());
    let error = SqliteStore::open(&url).await.expect_err("refused");
    assert!(error.to_string().contains("garbage.db"), "{error}");
}

#[tokio::test]
async fn concurrent_turns_in_many_chats_all_land() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir).await;
    let chats = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let key = telegram(&format!("chat-{n}"));
            let (author, model) = (author("7"), ModelName::new("m"));
            for i in 0..10 {
                let ended = record(
                    &format!("answer {i}"),
                    ReplyStatus::Complete,
                    usage(1, 1, 0, 0),
                );
                // As the engine does: read, then store the turn (creating the place's first).
                let context = store.turn_context(&key).await?;
                assert_eq!(context.new, i == 0);
                let turn = TurnStart {
                    conversation: context.conversation.id,
                    create_in: context.new.then_some(&key),
                    author: &author,
                    content: "q",
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
