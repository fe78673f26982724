//! Commands through Telegram: the /model keyboard, /new, /system rights, /help, and restarts.

use super::{Harness, user_contents};
use crate::fake_telegram::{User, group, private};

#[tokio::test]
async fn the_model_keyboard_switches_the_model_of_the_next_request() {
    let mut harness = Harness::new().await;
    let alice = User::new(801, "Alice");
    let chat = private(&alice);
    let tg = &harness.tg;
    tg.user_writes(&chat, &alice, "/model");
    tg.wait_for(10, "the keyboard", |tg| !tg.messages(801).is_empty())
        .await;
    let menu = tg.messages(801)[0].clone();
    let buttons = menu.markup.clone().expect("an inline keyboard");
    assert!(buttons.to_string().contains("model:grok-3"), "{buttons}");
    assert!(
        menu.text.contains("grok-4-fast-non-reasoning"),
        "shows the current model"
    );
    let press = tg.press(&chat, &alice, menu.id, "model:grok-3");
    tg.wait_for(10, "the callback answer", |tg| tg.callback_answered(&press))
        .await;
    tg.wait_for(10, "the menu updated", |tg| {
        tg.message(801, menu.id)
            .is_some_and(|m| m.markup.is_none() && m.text.contains("grok-3"))
    })
    .await;
    tg.user_writes(&chat, &alice, "which model?");
    harness.wait_for_requests(1).await;
    assert_eq!(harness.llm_bodies()[0]["model"], "grok-3");
    harness.stop().await;
}

#[tokio::test]
async fn new_starts_a_new_conversation_header() {
    let mut harness = Harness::new().await;
    let alice = User::new(802, "Alice");
    let chat = private(&alice);
    let tg = &harness.tg;
    tg.user_writes(&chat, &alice, "first");
    tg.wait_for(10, "the first answer", |tg| tg.messages(802).len() == 1)
        .await;
    tg.user_writes(&chat, &alice, "/new");
    tg.wait_for(10, "the reset notice", |tg| tg.messages(802).len() == 2)
        .await;
    tg.user_writes(&chat, &alice, "second");
    tg.wait_for(10, "the second answer", |tg| tg.messages(802).len() == 3)
        .await;
    let headers = harness.conversation_headers();
    assert_eq!(headers.len(), 2);
    assert_ne!(headers[0], headers[1]);
    assert_eq!(
        user_contents(&harness.llm_bodies()[1]),
        ["second"],
        "history forgotten"
    );
    harness.stop().await;
}

#[tokio::test]
async fn system_in_a_group_is_refused_to_members_and_allowed_to_admins() {
    let mut harness = Harness::new().await;
    let (member, admin, room) = (
        User::new(803, "Mia"),
        User::new(804, "Ada"),
        group(-3001, None),
    );
    let tg = &harness.tg;
    tg.make_admin(-3001, 804);
    tg.user_writes(&room, &member, "/system talk like a pirate");
    tg.wait_for(10, "the refusal", |tg| tg.messages(-3001).len() == 1)
        .await;
    assert!(
        tg.messages(-3001)[0].text.contains("Only admins"),
        "{:?}",
        tg.messages(-3001)
    );
    tg.user_writes(&room, &admin, "/system@parley_bot talk like a pirate");
    tg.wait_for(10, "the confirmation", |tg| tg.messages(-3001).len() == 2)
        .await;
    assert!(tg.messages(-3001)[1].text.contains("System prompt set"));
    tg.user_writes(&room, &member, "@parley_bot hi");
    harness.wait_for_requests(1).await;
    let system = harness.llm_bodies()[0]["messages"][0].clone();
    assert_eq!(system["content"], "talk like a pirate");
    harness.stop().await;
}

#[tokio::test]
async fn help_lists_the_commands() {
    let mut harness = Harness::new().await;
    let alice = User::new(805, "Alice");
    harness.tg.user_writes(&private(&alice), &alice, "/start");
    let tg = &harness.tg;
    tg.wait_for(10, "the help", |tg| !tg.messages(805).is_empty())
        .await;
    let help = &tg.messages(805)[0].text;
    for command in ["/ask", "/model", "/new", "/system", "/usage"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    assert!(harness.llm.requests().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_conversation_header_and_history() {
    let mut harness = Harness::new().await;
    let alice = User::new(806, "Alice");
    let chat = private(&alice);
    harness.tg.user_writes(&chat, &alice, "remember me");
    let tg = &harness.tg;
    tg.wait_for(10, "the first answer", |tg| tg.messages(806).len() == 1)
        .await;
    harness.stop().await;
    harness.start().await.expect("the bot starts again");
    harness.tg.user_writes(&chat, &alice, "still there?");
    harness.wait_for_requests(2).await;
    let headers = harness.conversation_headers();
    assert_eq!(
        headers[0], headers[1],
        "same conversation after the restart"
    );
    let body = &harness.llm_bodies()[1];
    assert_eq!(user_contents(body), ["remember me", "still there?"]);
    harness.stop().await;
}

#[tokio::test]
async fn usage_reports_this_chats_tokens_with_the_cached_share() {
    let mut harness = Harness::new().await;
    let alice = User::new(807, "Alice");
    let chat = private(&alice);
    harness
        .llm
        .push(crate::fake_llm::Script::reply("counted").cached_tokens(3));
    harness.tg.user_writes(&chat, &alice, "count me");
    let tg = &harness.tg;
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(807)
            .first()
            .is_some_and(|m| m.text == "counted")
    })
    .await;
    tg.user_writes(&chat, &alice, "/usage");
    tg.wait_for(10, "the usage", |tg| tg.messages(807).len() == 2)
        .await;
    let usage = &tg.messages(807)[1].text;
    assert!(
        usage.contains("1 replies") && usage.contains("3 cached"),
        "{usage}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_button_press_during_a_reply_takes_its_place_in_the_chats_turn_order() {
    let mut harness = Harness::new().await;
    let alice = User::new(811, "Alice");
    let chat = private(&alice);
    harness.tg.user_writes(&chat, &alice, "/model");
    let tg = &harness.tg;
    tg.wait_for(10, "the keyboard", |tg| !tg.messages(811).is_empty())
        .await;
    let menu = tg.messages(811)[0].clone();
    let answer: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let answer = answer.join(" ");
    harness.llm.push(
        crate::fake_llm::Script::reply(answer.as_str())
            .chunk_chars(8)
            .delay(std::time::Duration::from_millis(60)),
    );
    harness.tg.user_writes(&chat, &alice, "a long question");
    harness.wait_for_requests(1).await;
    let tg = &harness.tg;
    let press = tg.press(&chat, &alice, menu.id, "model:grok-3");
    tg.wait_for(10, "the callback answer", |tg| tg.callback_answered(&press))
        .await;
    assert!(
        tg.message(811, menu.id).is_some_and(|m| m.markup.is_some()),
        "answered at once; the switch waits for the reply in progress"
    );
    tg.wait_for(20, "the menu updated", |tg| {
        tg.message(811, menu.id)
            .is_some_and(|m| m.markup.is_none() && m.text.contains("grok-3"))
    })
    .await;
    let calls = tg.calls();
    let position = |found: &dyn Fn(&crate::fake_telegram::Call) -> bool| {
        calls.iter().rposition(|c| c.error.is_none() && found(c))
    };
    let final_text = position(&|c| {
        c.method.eq_ignore_ascii_case("sendmessage") && c.body["text"] == answer.as_str()
    });
    let menu_edit = position(&|c| {
        c.method.eq_ignore_ascii_case("editmessagetext") && c.body["message_id"] == menu.id
    });
    assert!(
        final_text.is_some() && final_text < menu_edit,
        "the reply's final text ({final_text:?}) lands before the switch ({menu_edit:?})"
    );
    assert_eq!(
        harness.llm_bodies()[0]["model"],
        "grok-4-fast-non-reasoning",
        "the reply in progress keeps its model"
    );
    harness.stop().await;
}
