//! The `Store` contract as tests, written once against `Arc<dyn Store>` and run against every
//! store by [`store_suite!`], as matrix-rust-sdk runs its store tests.

pub mod conversations;
pub mod files;
pub mod recovery;
pub mod replies;
pub mod turns;
pub mod usage;

use std::sync::Arc;

use parley::engine::event::{Author, ChatKey, ConversationId, MessageRef, PlatformKind, UserId};
use parley::engine::ports::{
    MessageRowId, ModelName, ReplyRecord, ReplyStatus, Store, StoreError, TurnRows, TurnStart,
    Usage,
};

/// Runs every contract test as a `#[tokio::test]` in a module `$store`, each on the new, empty
/// store `$fresh().await` opens: `store_suite!(sqlite, crate::store::sqlite::fresh);`.
/// `$fresh` returns the store and what must outlive the test beside it (a temporary folder), or
/// `None` when the store's server is not there (the test then skips; see [`Opened`]).
///
/// Every contract test is listed here; one left out is dead code, which clippy refuses.
macro_rules! store_suite {
    ($store:ident, $fresh:path) => {
        mod $store {
            $crate::store::suite::store_suite!(@tests $fresh;
                conversations::a_place_keeps_its_conversation_until_it_is_reset,
                conversations::reset_gives_a_new_id_and_keeps_the_old_rows,
                conversations::reset_of_an_unseen_chat_starts_its_first_conversation,
                conversations::threads_are_separate_conversations_from_their_parent_chat,
                conversations::the_same_chat_id_on_two_platforms_is_two_conversations,
                conversations::fifty_concurrent_first_calls_yield_one_conversation,
                conversations::settings_are_set_and_cleared_per_chat_place,
                turns::history_leaves_out_failed_and_streaming_replies_and_keeps_order,
                turns::turn_context_is_the_conversation_its_settings_and_its_history_in_one_read,
                turns::first_turns_of_a_new_place_create_one_conversation_with_settings_chosen_before,
                turns::concurrent_turns_in_many_chats_all_land,
                turns::text_so_far_is_recorded_while_streaming_and_left_alone_once_the_reply_ended,
                turns::unknown_conversations_and_replies_are_errors_that_store_nothing,
                files::files_come_back_with_their_messages_in_order,
                files::a_file_another_conversation_uses_outlives_a_reset,
                recovery::recover_interrupted_marks_streaming_replies_partial_once_oldest_first,
                usage::usage_is_summed_per_chat_over_conversations_and_per_user,
                replies::the_last_reply_is_the_newest_of_the_current_conversation_and_none_after_a_reset,
                replies::a_reopened_reply_keeps_its_old_answer_leaves_the_history_and_adds_usage,
                replies::a_continued_answer_takes_its_place_in_the_set,
            );
        }
    };
    (@tests $fresh:path; $($group:ident::$test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some((store, _kept)) = $crate::store::suite::Opened::opened($fresh().await)
                else {
                    return;
                };
                $crate::store::suite::$group::$test(store).await;
            }
        )*
    };
}

pub(crate) use store_suite;

/// What a store's `fresh` gives: the store and what it keeps, or (for a store on a server the
/// tests may not have) perhaps nothing.
pub trait Opened<K> {
    /// The store and what it keeps, when it opened.
    fn opened(self) -> Option<(Arc<dyn Store>, K)>;
}

impl<K> Opened<K> for (Arc<dyn Store>, K) {
    fn opened(self) -> Option<(Arc<dyn Store>, K)> {
        Some(self)
    }
}

impl<K> Opened<K> for Option<(Arc<dyn Store>, K)> {
    fn opened(self) -> Option<(Arc<dyn Store>, K)> {
        self
    }
}

/// A Telegram chat.
pub fn telegram(chat: &str) -> ChatKey {
    ChatKey::new(PlatformKind::Telegram, chat)
}

/// User `id`, named "user `id`".
pub fn author(id: &str) -> Author {
    Author {
        id: UserId::new(id),
        display_name: format!("user {id}"),
    }
}

/// Platform message references.
pub fn refs(ids: &[&str]) -> Vec<MessageRef> {
    ids.iter().map(|id| MessageRef::new(*id)).collect()
}

/// A reply that ended `status` with `content` in platform message 10; not complete means
/// the stream closed early.
pub fn record(content: &str, status: ReplyStatus, usage: Usage) -> ReplyRecord {
    ReplyRecord {
        content: content.into(),
        status,
        reason: (status != ReplyStatus::Complete).then(|| "upstream closed the stream".into()),
        platform_messages: refs(&["10"]),
        usage,
        finish_reason: (status == ReplyStatus::Complete).then(|| "stop".into()),
    }
}

/// Token counts.
pub fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
    }
}

/// Starts a turn by `user` in the stored `conversation`: its user message and streaming reply.
pub async fn start(
    store: &dyn Store,
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
        files: &[],
        model: &model,
    };
    store.start_turn(&turn).await
}

/// Stores one user turn and its reply, ended as `ended` says.
pub async fn turn(
    store: &dyn Store,
    conversation: ConversationId,
    user: &str,
    prompt: &str,
    ended: &ReplyRecord,
) -> MessageRowId {
    let rows = start(store, conversation, user, prompt)
        .await
        .expect("turn started");
    assert_eq!(rows.conversation, conversation);
    store
        .finish_reply(rows.reply, ended)
        .await
        .expect("reply finished");
    rows.reply
}
