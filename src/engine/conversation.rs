//! Building a turn's completion request: system prompt, history and the new message, with
//! prompt-cache friendly trimming (pure functions).

use super::ports::{ChatMessage, Role, StoredMessage};

/// Estimated tokens of a message: about four bytes a token, plus the message's framing.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4) + 4
}

/// The text sent for a user message: in group chats prefixed with the author's name, so the
/// model knows who said what. Deterministic, so a stored turn is sent the same way every time.
pub fn user_text(content: &str, author_name: Option<&str>, private: bool) -> String {
    match author_name {
        Some(name) if !private && !name.is_empty() => format!("{name}: {content}"),
        _ => content.to_string(),
    }
}

fn to_chat_message(message: &StoredMessage, private: bool) -> ChatMessage {
    let content = match message.role {
        Role::User => user_text(&message.content, message.author_name.as_deref(), private),
        _ => message.content.clone(),
    };
    ChatMessage {
        role: message.role,
        content,
    }
}

/// Where the sent history starts, given every message's cost and role.
///
/// Replays the conversation message by message: whenever the total exceeds `budget`, a block of
/// the oldest messages worth at least a third of the budget is dropped at once, ending before a
/// user message. Replaying makes the answer a function of the history alone, so the start stays
/// put from turn to turn until the budget is exceeded again, and each request extends the
/// previous one byte for byte.
pub fn history_start(costs: &[(usize, Role)], budget: usize) -> usize {
    let mut start = 0;
    let mut total = 0;
    for (i, (cost, _)) in costs.iter().enumerate() {
        total += cost;
        if total <= budget {
            continue;
        }
        let target = (budget / 3).max(total - budget);
        let mut dropped = 0;
        while start < i && (dropped < target || costs[start].1 != Role::User) {
            dropped += costs[start].0;
            total -= costs[start].0;
            start += 1;
        }
    }
    start
}

/// The messages of one turn's request: the system prompt, the history within `budget`
/// estimated tokens (see [`history_start`]), and the new user message last.
pub fn build_messages(
    system_prompt: Option<&str>,
    history: &[StoredMessage],
    new_message: &StoredMessage,
    private: bool,
    budget: usize,
) -> Vec<ChatMessage> {
    let all: Vec<ChatMessage> = history
        .iter()
        .chain(std::iter::once(new_message))
        .map(|m| to_chat_message(m, private))
        .collect();
    let costs: Vec<(usize, Role)> = all
        .iter()
        .map(|m| (estimate_tokens(&m.content), m.role))
        .collect();
    let start = history_start(&costs, budget);
    let system = system_prompt
        .filter(|p| !p.trim().is_empty())
        .map(|p| ChatMessage {
            role: Role::System,
            content: p.to_string(),
        });
    system
        .into_iter()
        .chain(all.into_iter().skip(start))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str, name: &str) -> StoredMessage {
        StoredMessage {
            role: Role::User,
            author_name: Some(name.into()),
            content: text.into(),
        }
    }

    fn assistant(text: &str) -> StoredMessage {
        StoredMessage {
            role: Role::Assistant,
            author_name: None,
            content: text.into(),
        }
    }

    #[test]
    fn group_messages_carry_the_author_name_and_private_ones_do_not() {
        let history = [user("hi", "Ann"), assistant("hello Ann")];
        let group = build_messages(
            Some("sys"),
            &history,
            &user("and me?", "Bob"),
            false,
            10_000,
        );
        let texts: Vec<_> = group.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "Ann: hi", "hello Ann", "Bob: and me?"]);
        let private = build_messages(None, &history, &user("x", "Ann"), true, 10_000);
        let texts: Vec<_> = private.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["hi", "hello Ann", "x"]);
    }

    #[test]
    fn an_empty_system_prompt_is_left_out() {
        let msgs = build_messages(Some("  "), &[], &user("x", "A"), true, 1000);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].role, Role::User);
    }

    /// Simulates many turns and returns each turn's request.
    fn simulate(turns: usize, budget: usize) -> Vec<Vec<ChatMessage>> {
        let mut history = Vec::new();
        let mut requests = Vec::new();
        for turn in 0..turns {
            let new = user(
                &format!("question {turn} {}", "q".repeat(turn % 7 * 20)),
                "Ann",
            );
            requests.push(build_messages(
                Some("system"),
                &history,
                &new,
                false,
                budget,
            ));
            history.push(new);
            history.push(assistant(&format!("answer {turn} {}", "a".repeat(150))));
        }
        requests
    }

    fn is_prefix(previous: &[ChatMessage], next: &[ChatMessage]) -> bool {
        next.len() > previous.len() && next[..previous.len()] == *previous
    }

    #[test]
    fn each_request_extends_the_previous_one_until_the_budget_is_exceeded() {
        let requests = simulate(8, 100_000);
        for pair in requests.windows(2) {
            assert!(is_prefix(&pair[0], &pair[1]));
        }
    }

    #[test]
    fn trimming_drops_a_large_block_at_once_and_then_stays_stable() {
        let budget = 1_000;
        let requests = simulate(60, budget);
        let mut drops = Vec::new();
        for (turn, pair) in requests.windows(2).enumerate() {
            if !is_prefix(&pair[0], &pair[1]) {
                drops.push(turn + 1);
                let before: usize = pair[0].iter().map(|m| estimate_tokens(&m.content)).sum();
                let after: usize = pair[1][..pair[1].len() - 1]
                    .iter()
                    .map(|m| estimate_tokens(&m.content))
                    .sum();
                assert!(
                    before - after + 100 >= budget / 3,
                    "a drop removes at least a third of the budget ({before} -> {after})"
                );
            }
            let history_tokens: usize = pair[1][1..]
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum();
            assert!(
                history_tokens <= budget,
                "turn {turn}: {history_tokens} > {budget}"
            );
            assert_eq!(
                pair[1][0].content, "system",
                "the system prompt always leads"
            );
            assert_eq!(
                pair[1][1].role,
                Role::User,
                "history starts with a user message"
            );
        }
        assert!(
            drops.len() >= 2,
            "the simulation exceeds the budget: {drops:?}"
        );
        for gap in drops.windows(2) {
            assert!(
                gap[1] - gap[0] >= 2,
                "drops are rare, not every turn: {drops:?}"
            );
        }
    }

    #[test]
    fn a_single_huge_message_is_still_sent() {
        let big = user(&"x".repeat(50_000), "A");
        let msgs = build_messages(None, &[user("old", "A"), assistant("r")], &big, true, 1_000);
        assert_eq!(msgs.last().unwrap().content.len(), 50_000);
        assert_eq!(msgs.len(), 1, "older turns make room for it");
    }
}
