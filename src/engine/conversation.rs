//! Building a turn's completion request: system prompt, history and the new message, with
//! prompt-cache friendly trimming (pure functions).

use super::attachment::{FileContent, StoredFile};
use super::ports::{ChatMessage, Part, Role, StoredMessage};

/// Estimated tokens of a message: about four bytes a token, plus the message's framing.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4) + 4
}

/// How a request is shaped beyond its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// A private chat: user messages go without their author's name.
    pub private: bool,
    /// Estimated tokens of history the request may carry.
    pub budget: usize,
    /// The estimate one image counts for (`history.image_tokens`).
    pub image_tokens: usize,
    /// Whether the model reads images; if not, images are named in text instead.
    pub images: bool,
}

/// The text sent for a user message: in group chats prefixed with the author's name, so the
/// model knows who said what. Deterministic, so a stored turn is sent the same way every time.
pub fn user_text(content: &str, author_name: Option<&str>, private: bool) -> String {
    match author_name {
        Some(name) if !private && !name.is_empty() && content.is_empty() => format!("{name}:"),
        Some(name) if !private && !name.is_empty() => format!("{name}: {content}"),
        _ => content.to_string(),
    }
}

/// The part a stored file is sent as: an image as itself (or named, for a model that cannot
/// read images), a text file as its name and a fenced block.
pub fn file_part(file: &StoredFile, images: bool) -> Part {
    match &file.content {
        FileContent::Image { kind, data } if images => Part::Image {
            mime: kind.mime(),
            data: data.clone(),
        },
        FileContent::Image { .. } => Part::Text(format!(
            "[{}: an image, not shown to this model]",
            file.name
        )),
        FileContent::Text(text) => Part::Text(fenced(&file.name, text)),
    }
}

/// `name:` and `text` in a code fence longer than any run of backticks inside it.
fn fenced(name: &str, text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("{name}:\n{fence}\n{text}{newline}{fence}")
}

/// Estimated tokens of a message with its parts, an image counting `image_tokens`.
pub fn message_tokens(message: &ChatMessage, image_tokens: usize) -> usize {
    let parts: usize = message
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => estimate_tokens(text),
            Part::Image { .. } => image_tokens,
        })
        .sum();
    estimate_tokens(&message.content) + parts
}

fn to_chat_message(message: &StoredMessage, shape: Shape) -> ChatMessage {
    let content = match message.role {
        Role::User => user_text(
            &message.content,
            message.author_name.as_deref(),
            shape.private,
        ),
        _ => message.content.clone(),
    };
    ChatMessage {
        role: message.role,
        content,
        parts: message
            .files
            .iter()
            .map(|file| file_part(file, shape.images))
            .collect(),
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

/// The messages of one turn's request: the system prompt, the history within the shape's
/// budget of estimated tokens (see [`history_start`]; an image counts `image_tokens`), and the
/// new user message last.
pub fn build_messages(
    system_prompt: Option<&str>,
    history: &[StoredMessage],
    new_message: &StoredMessage,
    shape: Shape,
) -> Vec<ChatMessage> {
    let all: Vec<ChatMessage> = history
        .iter()
        .chain(std::iter::once(new_message))
        .map(|m| to_chat_message(m, shape))
        .collect();
    let costs: Vec<(usize, Role)> = all
        .iter()
        .map(|m| (message_tokens(m, shape.image_tokens), m.role))
        .collect();
    let start = history_start(&costs, shape.budget);
    let system = system_prompt
        .filter(|p| !p.trim().is_empty())
        .map(|p| ChatMessage::text(Role::System, p));
    system
        .into_iter()
        .chain(all.into_iter().skip(start))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attachment::ImageType;

    fn user(text: &str, name: &str) -> StoredMessage {
        StoredMessage {
            role: Role::User,
            author_name: Some(name.into()),
            content: text.into(),
            files: Vec::new(),
        }
    }

    fn shape(private: bool, budget: usize) -> Shape {
        Shape {
            private,
            budget,
            image_tokens: 1_000,
            images: true,
        }
    }

    fn assistant(text: &str) -> StoredMessage {
        StoredMessage {
            role: Role::Assistant,
            author_name: None,
            content: text.into(),
            files: Vec::new(),
        }
    }

    #[test]
    fn group_messages_carry_the_author_name_and_private_ones_do_not() {
        let history = [user("hi", "Ann"), assistant("hello Ann")];
        let group = build_messages(
            Some("sys"),
            &history,
            &user("and me?", "Bob"),
            shape(false, 10_000),
        );
        let texts: Vec<_> = group.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["sys", "Ann: hi", "hello Ann", "Bob: and me?"]);
        let private = build_messages(None, &history, &user("x", "Ann"), shape(true, 10_000));
        let texts: Vec<_> = private.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["hi", "hello Ann", "x"]);
    }

    #[test]
    fn an_empty_system_prompt_is_left_out() {
        let msgs = build_messages(Some("  "), &[], &user("x", "A"), shape(true, 1000));
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
                shape(false, budget),
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
        let msgs = build_messages(
            None,
            &[user("old", "A"), assistant("r")],
            &big,
            shape(true, 1_000),
        );
        assert_eq!(msgs.last().unwrap().content.len(), 50_000);
        assert_eq!(msgs.len(), 1, "older turns make room for it");
    }

    fn with_image(text: &str, name: &str) -> StoredMessage {
        let png = b"\x89PNG\r\n\x1a\n....".to_vec();
        let mut message = user(text, name);
        message.files = vec![
            StoredFile::image("shot.png", ImageType::Png, png),
            StoredFile::text("log.txt", "a ``` b"),
        ];
        message
    }

    #[test]
    fn attachments_follow_the_text_as_parts() {
        let msgs = build_messages(
            None,
            &[],
            &with_image("what is this?", "Ann"),
            shape(false, 10_000),
        );
        assert_eq!(msgs[0].content, "Ann: what is this?");
        assert!(
            matches!(&msgs[0].parts[0], Part::Image { mime: "image/png", data } if data.len() == 12)
        );
        assert_eq!(
            msgs[0].parts[1],
            Part::Text("log.txt:\n````\na ``` b\n````".into())
        );
        let caption_less = build_messages(None, &[], &with_image("", "Ann"), shape(false, 10_000));
        assert_eq!(caption_less[0].content, "Ann:");
    }

    #[test]
    fn a_model_that_cannot_read_images_gets_their_names_instead() {
        let text_only = Shape {
            images: false,
            ..shape(true, 10_000)
        };
        let msgs = build_messages(
            None,
            &[with_image("see", "A")],
            &user("and?", "A"),
            text_only,
        );
        assert_eq!(
            msgs[0].parts[0],
            Part::Text("[shot.png: an image, not shown to this model]".into())
        );
    }

    #[test]
    fn an_image_counts_its_configured_tokens_and_whole_turns_are_dropped() {
        let long = "x".repeat(400);
        let history = [
            with_image("old", "A"),
            assistant("answer"),
            user(&long, "A"),
            assistant("answer"),
        ];
        let new = user("next", "A");
        let kept = build_messages(None, &history, &new, shape(true, 1_200));
        assert_eq!(
            kept.len(),
            5,
            "the image's 1,000 tokens fit a budget of 1,200"
        );
        let dropped = build_messages(None, &history, &new, shape(true, 1_100));
        let texts: Vec<_> = dropped.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            texts,
            [long.as_str(), "answer", "next"],
            "its turn goes whole"
        );
    }
}
