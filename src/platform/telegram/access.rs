//! Who the bot answers (telegram.allowed_chats / allowed_users, with a refusal at most once per
//! chat per hour) and who may change a group's settings (chat admins and access.admins).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use teloxide::Bot;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, UserId};

/// What a refused chat is told.
pub const REFUSAL: &str = "Sorry, I am not available here.";
/// Refusals remembered before old ones are forgotten.
const REMEMBERED: usize = 4096;

/// The access rules of the Telegram adapter.
#[derive(Debug)]
pub struct Access {
    chats: HashSet<String>,
    users: HashSet<String>,
    admins: HashSet<String>,
    refusal_every: Duration,
    refused: Mutex<HashMap<String, Instant>>,
}

impl Access {
    /// Rules from the allowed lists (empty = everyone) and `access.admins` (platform-qualified).
    pub fn new(chats: &[String], users: &[String], admins: &[String], every: Duration) -> Self {
        let set = |ids: &[String]| ids.iter().map(|id| id.trim().to_string()).collect();
        let admins = admins
            .iter()
            .filter_map(|a| a.trim().strip_prefix("telegram:"))
            .map(str::to_string)
            .collect();
        Self {
            chats: set(chats),
            users: set(users),
            admins,
            refusal_every: every,
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// True when the bot answers `user` in `chat`.
    pub fn allows(&self, chat: &str, user: &str) -> bool {
        (self.chats.is_empty() || self.chats.contains(chat))
            && (self.users.is_empty() || self.users.contains(user))
    }

    /// True when `chat` should be told it is refused now (not in the last `every`); records it.
    pub fn refuse_now(&self, chat: &str) -> bool {
        let Ok(mut refused) = self.refused.lock() else {
            return false;
        };
        let now = Instant::now();
        if refused.len() >= REMEMBERED {
            refused.retain(|_, at| now.duration_since(*at) < self.refusal_every);
        }
        match refused.get(chat) {
            Some(at) if now.duration_since(*at) < self.refusal_every => false,
            _ => {
                refused.insert(chat.to_string(), now);
                true
            }
        }
    }

    /// True when `user` is listed in access.admins.
    pub fn is_listed_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }
}

/// True when `user` is an administrator (or the creator) of the group `chat`, asked of
/// Telegram with getChatMember; false when Telegram cannot say.
pub async fn chat_admin(bot: &Bot, chat: &str, user: &str) -> bool {
    let (Ok(chat_id), Ok(user_id)) = (chat.parse::<i64>(), user.parse::<u64>()) else {
        return false;
    };
    match bot.get_chat_member(ChatId(chat_id), UserId(user_id)).await {
        Ok(member) => member.is_privileged(),
        Err(error) => {
            tracing::warn!(%error, chat, "could not check the sender's admin rights");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_lists_allow_everyone_and_lists_restrict() {
        let open = Access::new(&[], &[], &[], Duration::from_secs(3600));
        assert!(open.allows("-100", "5"));
        let closed = Access::new(
            &ids(&["-100"]),
            &ids(&["5"]),
            &[],
            Duration::from_secs(3600),
        );
        assert!(closed.allows("-100", "5"));
        assert!(!closed.allows("-200", "5"));
        assert!(!closed.allows("-100", "6"));
    }

    #[test]
    fn a_chat_is_refused_once_per_period() {
        let access = Access::new(&ids(&["1"]), &[], &[], Duration::from_secs(3600));
        assert!(access.refuse_now("-7"));
        assert!(!access.refuse_now("-7"));
        assert!(access.refuse_now("-8"));
    }

    #[test]
    fn only_telegram_admins_are_listed() {
        let admins = ids(&["telegram:42", "discord:43"]);
        let access = Access::new(&[], &[], &admins, Duration::from_secs(1));
        assert!(access.is_listed_admin("42"));
        assert!(!access.is_listed_admin("43"));
    }
}
