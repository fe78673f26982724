//! Groups and forum topics: what is answered, what is ignored, which conversation it joins.

use std::time::Duration;

use super::{Harness, user_contents};
use crate::fake_telegram::{FakeLimits, User, group, private};

#[tokio::test]
async fn group_mentions_and_replies_to_the_bot_are_answered_and_chatter_ignored() {
    let mut harness = Harness::new().await;
    let (bob, room) = (User::new(701, "Bob"), group(-2001, None));
    let tg = &harness.tg;
    tg.user_writes(&room, &bob, "just chatting among humans");
    let asked = tg.user_writes(&room, &bob, "@parley_bot what is up?");
    let expected = "echo: Bob: what is up?";
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(-2001)
            .first()
            .is_some_and(|m| m.text == expected)
    })
    .await;
    let answer = &tg.messages(-2001)[0];
    assert_eq!(answer.reply_to, Some(asked), "answers as a reply");
    tg.user_replies(&room, &bob, "and then?", answer.id);
    tg.wait_for(10, "the second answer", |tg| tg.messages(-2001).len() == 2)
        .await;
    let bodies = harness.llm_bodies();
    assert_eq!(bodies.len(), 2, "the chatter never reached the model");
    let users = user_contents(&bodies[1]);
    assert_eq!(
        users,
        ["Bob: what is up?", "Bob: and then?"],
        "nothing else stored"
    );
    harness.stop().await;
}

#[tokio::test]
async fn each_forum_topic_is_its_own_conversation() {
    let mut harness = Harness::new().await;
    let bob = User::new(702, "Bob");
    let (topic_a, topic_b) = (group(-2002, Some(11)), group(-2002, Some(22)));
    let tg = &harness.tg;
    tg.user_writes(&topic_a, &bob, "@parley_bot in topic a");
    tg.wait_for(10, "answer a", |tg| tg.messages(-2002).len() == 1)
        .await;
    tg.user_writes(&topic_b, &bob, "@parley_bot in topic b");
    tg.wait_for(10, "answer b", |tg| tg.messages(-2002).len() == 2)
        .await;
    let threads: Vec<_> = tg.messages(-2002).iter().map(|m| m.thread).collect();
    assert_eq!(threads, [Some(11), Some(22)], "answers stay in their topic");
    let headers = harness.conversation_headers();
    assert_eq!(headers.len(), 2);
    assert_ne!(headers[0], headers[1], "different conversations");
    harness.stop().await;
}

#[tokio::test]
async fn chats_not_allowed_get_one_refusal_and_never_reach_the_model() {
    let env = [("TELEGRAM__ALLOWED_CHATS", "-2003")];
    let mut harness = Harness::with_limits(FakeLimits::default(), &env).await;
    let eve = User::new(703, "Eve");
    let tg = &harness.tg;
    tg.user_writes(&private(&eve), &eve, "hello?");
    tg.user_writes(&private(&eve), &eve, "hello again?");
    tg.wait_for(10, "the refusal", |tg| !tg.messages(703).is_empty())
        .await;
    let room = group(-2003, None);
    tg.user_writes(&room, &eve, "@parley_bot allowed here");
    tg.wait_for(10, "the allowed answer", |tg| {
        !tg.messages(-2003).is_empty()
    })
    .await;
    // Updates are handled in order, so both private messages were decided on before the
    // group's; stopping waits for every notice the bot spawned, a second refusal included.
    harness.stop().await;
    let tg = &harness.tg;
    assert_eq!(tg.messages(703).len(), 1, "one refusal per hour");
    assert!(tg.messages(703)[0].text.contains("not available"));
    assert_eq!(harness.llm.requests().len(), 1);
}

#[tokio::test]
async fn a_question_deleted_before_the_answer_is_still_answered() {
    let mut harness = Harness::new().await;
    let (bob, room) = (User::new(704, "Bob"), group(-2004, None));
    let script = crate::fake_llm::Script::reply("late answer").delay(Duration::from_millis(50));
    harness.llm.push(script);
    let asked = harness.tg.user_writes(&room, &bob, "@parley_bot quick");
    harness.tg.user_deletes(-2004, asked);
    let tg = &harness.tg;
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(-2004)
            .first()
            .is_some_and(|m| m.text == "late answer")
    })
    .await;
    assert_eq!(tg.messages(-2004)[0].reply_to, None);
    harness.stop().await;
}

#[tokio::test]
async fn polling_survives_a_broken_bot_api_and_answers_afterwards() {
    let mut harness = Harness::unstarted(FakeLimits::default(), &[]).await;
    harness.tg.break_polls(3);
    let config = harness.config_with(|telegram| telegram.poll_backoff = Duration::from_millis(20));
    harness.start_with(config).await.expect("the bot starts");
    let alice = User::new(705, "Alice");
    harness
        .tg
        .user_writes(&private(&alice), &alice, "are you there?");
    let tg = &harness.tg;
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(705)
            .first()
            .is_some_and(|m| m.text == "echo: are you there?")
    })
    .await;
    assert!(tg.calls_of("getUpdates").len() >= 4, "it kept polling");
    harness.stop().await;
}

#[tokio::test]
async fn topics_streaming_at_once_share_the_groups_budget() {
    let mut harness = Harness::new().await;
    let bob = User::new(706, "Bob");
    let answers: Vec<String> = (0..3)
        .map(|t| {
            (0..60)
                .map(|i| format!("t{t}w{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    for answer in &answers {
        let script = crate::fake_llm::Script::reply(answer.as_str())
            .chunk_chars(8)
            .delay(Duration::from_millis(10));
        harness.llm.push(script);
    }
    for topic in [31, 32, 33] {
        harness
            .tg
            .user_writes(&group(-2006, Some(topic)), &bob, "@parley_bot go");
        harness.wait_for_requests((topic - 30) as usize).await;
    }
    let tg = &harness.tg;
    tg.wait_for(20, "three full answers", |tg| {
        let shown: Vec<String> = tg.messages(-2006).into_iter().map(|m| m.text).collect();
        answers.iter().all(|a| shown.contains(a))
    })
    .await;
    assert_eq!(tg.too_many_requests(), 0, "the topics kept to one budget");
    harness.stop().await;
}

#[tokio::test]
async fn a_mention_alone_in_a_group_gets_the_empty_ask_hint() {
    let mut harness = Harness::new().await;
    let (bob, room) = (User::new(741, "Bob"), group(-2041, None));
    let asked = harness.tg.user_writes(&room, &bob, "@parley_bot");
    harness
        .tg
        .wait_for(10, "the hint", |tg| {
            tg.messages(-2041)
                .first()
                .is_some_and(|m| m.text == "Ask me something: /ask <question>")
        })
        .await;
    assert_eq!(harness.tg.messages(-2041)[0].reply_to, Some(asked));
    assert!(harness.llm_bodies().is_empty(), "the model was not asked");
    harness.stop().await;
}

#[tokio::test]
async fn an_update_that_does_not_decode_is_skipped_and_polling_goes_on() {
    let mut harness = Harness::new().await;
    // Nested deeper than serde_json decodes (128 levels): the whole batch failed to decode,
    // and the poll after it asked for the same batch again, for good.
    let mut deep = serde_json::json!(1);
    for _ in 0..300 {
        deep = serde_json::json!([deep]);
    }
    let odd = serde_json::json!({ "message": { "message_id": 1, "new_field": deep } });
    let broken = harness.tg.push_update(odd);
    let alice = User::new(742, "Alice");
    let tg = &harness.tg;
    tg.user_writes(&private(&alice), &alice, "after the broken one");
    tg.wait_for(10, "the answer", |tg| {
        tg.messages(742)
            .first()
            .is_some_and(|m| m.text == "echo: after the broken one")
    })
    .await;
    let polls = tg.calls_of("getUpdates");
    let past = polls
        .iter()
        .any(|c| c.body["offset"].as_i64().is_some_and(|o| o > broken));
    assert!(past, "a later poll asks past the broken update");
    harness.stop().await;
}
