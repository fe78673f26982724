//! The contract on usage: summed per chat place over its conversations, and per user.

use std::sync::Arc;

use parley::engine::event::{ChatKey, PlatformKind, UserId};
use parley::engine::ports::{ReplyStatus, Store, UsageTotals};

use super::{record, telegram, turn, usage};

pub async fn usage_is_summed_per_chat_over_conversations_and_per_user(store: Arc<dyn Store>) {
    let store = &*store;
    let group = telegram("-100");
    let first = store.conversation(&group).await.expect("created").id;
    let complete = |u| record("answer", ReplyStatus::Complete, u);
    turn(store, first, "7", "a", &complete(usage(100, 10, 50, 2))).await;
    turn(store, first, "8", "b", &complete(usage(200, 20, 150, 0))).await;
    let second = store.reset(&group).await.expect("reset").id;
    turn(store, second, "7", "c", &complete(usage(300, 30, 0, 5))).await;
    let elsewhere = store
        .conversation(&telegram("-200"))
        .await
        .expect("other")
        .id;
    turn(store, elsewhere, "7", "d", &complete(usage(1, 1, 1, 1))).await;
    let discord = ChatKey::new(PlatformKind::Discord, "9");
    let on_discord = store.conversation(&discord).await.expect("discord").id;
    let big = complete(usage(1000, 1000, 0, 0));
    turn(store, on_discord, "7", "e", &big).await;

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
