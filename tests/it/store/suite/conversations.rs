//! The contract on conversations and settings: one per chat place, a new one on reset.

use std::sync::Arc;

use parley::engine::event::{ChatKey, PlatformKind};
use parley::engine::ports::{ModelName, ReplyStatus, Store, Usage};

use super::{record, telegram, turn};

pub async fn a_place_keeps_its_conversation_until_it_is_reset(store: Arc<dyn Store>) {
    let key = telegram("42");
    let first = store.conversation(&key).await.expect("created");
    assert_eq!(first.key, key);
    assert_eq!(store.conversation(&key).await.expect("found"), first);
    let reset = store.reset(&key).await.expect("reset");
    assert_eq!(store.conversation(&key).await.expect("found"), reset);
}

pub async fn reset_gives_a_new_id_and_keeps_the_old_rows(store: Arc<dyn Store>) {
    let key = telegram("42");
    let old = store.conversation(&key).await.expect("created").id;
    let done = record("hello there", ReplyStatus::Complete, Usage::default());
    turn(&*store, old, "7", "hi", &done).await;

    let new = store.reset(&key).await.expect("reset");
    assert_ne!(new.id, old);
    assert_eq!(new.key, key);
    assert_eq!(store.conversation(&key).await.expect("found").id, new.id);
    assert!(store.history(new.id).await.expect("history").is_empty());
    assert_eq!(store.history(old).await.expect("history").len(), 2);
}

pub async fn reset_of_an_unseen_chat_starts_its_first_conversation(store: Arc<dyn Store>) {
    let key = telegram("new");
    let started = store.reset(&key).await.expect("reset");
    assert_eq!(store.conversation(&key).await.expect("found"), started);
}

pub async fn threads_are_separate_conversations_from_their_parent_chat(store: Arc<dyn Store>) {
    let chat = telegram("-100");
    let topic = chat.clone().with_thread("5");
    let other_topic = chat.clone().with_thread("6");
    let in_chat = store.conversation(&chat).await.expect("chat").id;
    let in_topic = store.conversation(&topic).await.expect("topic");
    let in_other = store.conversation(&other_topic).await.expect("other").id;
    assert_ne!(in_chat, in_topic.id);
    assert_ne!(in_topic.id, in_other);
    assert_eq!(in_topic.key, topic);

    store.reset(&topic).await.expect("reset topic");
    assert_eq!(store.conversation(&chat).await.expect("chat").id, in_chat);
}

pub async fn the_same_chat_id_on_two_platforms_is_two_conversations(store: Arc<dyn Store>) {
    let on_telegram = store.conversation(&telegram("1")).await.expect("telegram");
    let discord = ChatKey::new(PlatformKind::Discord, "1");
    let on_discord = store.conversation(&discord).await.expect("discord");
    assert_ne!(on_telegram.id, on_discord.id);
}

pub async fn fifty_concurrent_first_calls_yield_one_conversation(store: Arc<dyn Store>) {
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

pub async fn settings_are_set_and_cleared_per_chat_place(store: Arc<dyn Store>) {
    let chat = telegram("42");
    let topic = chat.clone().with_thread("1");
    let defaults = store.settings(&chat).await.expect("defaults");
    assert_eq!(defaults, Default::default());

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
    let in_topic = store.settings(&topic).await.expect("topic");
    assert_eq!(in_topic, Default::default());

    store.set_model(&chat, None).await.expect("model cleared");
    let cleared = store.settings(&chat).await.expect("settings");
    assert_eq!(cleared.model, None);
    assert_eq!(cleared.system_prompt.as_deref(), Some("Be brief."));
}
