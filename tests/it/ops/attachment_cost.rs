//! The cost of an image turn, for any build: `PARLEY_BIN=target/release/parley cargo test
//! --test it ops::attachment_cost -- --ignored --nocapture` runs that binary on Telegram (the
//! fake) and prints the bytes sent to the model and the time from the message's delivery (the
//! getUpdates that handed it over) to the request, for a text turn, an image turn and the turn
//! after it; then the resident memory with `ATTACH_CONVERSATIONS` (100) conversations holding an
//! image of `ATTACH_IMAGE_KB` (300) KiB each, and while each of them asks once more. The
//! conversations start all at once, or one after the other with `ATTACH_SEQUENTIAL=1` (what a
//! conversation holds at rest, apart from what a burst of them needs at once).

use std::time::Duration;

use super::{Bot, Install};
use crate::fake_telegram::{Media, User, private};
use crate::parts::jpeg;

/// VmRSS and VmHWM of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
        let value = line.trim_start_matches(key).trim().trim_end_matches("kB");
        value.trim().parse::<f64>().unwrap_or(0.0) / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

fn number(name: &str, default: usize) -> usize {
    let value = std::env::var(name).ok().and_then(|v| v.parse().ok());
    value.unwrap_or(default)
}

/// Waits until every user of `users` shows `count` bot messages.
async fn answered(bot: &Bot, users: &[User], count: usize) {
    let all = |tg: &crate::fake_telegram::FakeTelegram| {
        users.iter().all(|u| tg.messages(u.id).len() >= count)
    };
    bot.tg.wait_for(300, "every answer", all).await;
}

#[tokio::test]
#[ignore = "a measurement; run it against a release build"]
async fn attachment_cost_report() {
    let install = Install::new().await;
    let bin = std::env::var("PARLEY_BIN").unwrap_or(env!("CARGO_BIN_EXE_parley").into());
    let env = [("PARLEY__TELEGRAM__EDIT_INTERVAL_MS", "50")];
    let bot = Bot::start_binary(&install, &bin, &env).await;
    bot.wait_healthy().await;
    let pid = bot.child.id().expect("running");
    let image_kb = number("ATTACH_IMAGE_KB", 300);
    let conversations = number("ATTACH_CONVERSATIONS", 100);
    let (idle, _) = memory(pid);

    let turn = |label: &str, user: &User, id: i64, count: usize| {
        let requests = install.fake.requests();
        assert_eq!(
            requests.len(),
            count,
            "{label}: {:?}",
            bot.tg.messages(user.id)
        );
        let request = requests.last().expect("a request");
        let delivered = bot.tg.delivered(user.id, id).expect("delivered");
        eprintln!(
            "{label}: {} bytes sent to the model; delivered → request {:?}",
            request.raw.len(),
            request.at.duration_since(delivered)
        );
    };
    let ann = User::new(70_000, "Ann");
    let chat = private(&ann);
    let id = bot.tg.user_writes(&chat, &ann, "what is in a photo?");
    answered(&bot, std::slice::from_ref(&ann), 1).await;
    turn("text turn", &ann, id, 1);
    let photo = Media::Photo(jpeg(1, image_kb * 1024));
    let id = bot
        .tg
        .user_sends(&chat, &ann, &photo, "what is in this one?", None);
    answered(&bot, std::slice::from_ref(&ann), 2).await;
    turn(&format!("image turn ({image_kb} KiB JPEG)"), &ann, id, 2);
    let id = bot.tg.user_writes(&chat, &ann, "and the colours?");
    answered(&bot, std::slice::from_ref(&ann), 3).await;
    turn("the turn after it (the image is sent again)", &ann, id, 3);

    let users: Vec<User> = (0..conversations)
        .map(|i| User::new(80_000 + i as i64, "User"))
        .collect();
    let sequential = std::env::var("ATTACH_SEQUENTIAL").is_ok_and(|v| v == "1");
    for (i, user) in users.iter().enumerate() {
        let photo = Media::Photo(jpeg(i as u8, image_kb * 1024));
        let chat = private(user);
        bot.tg.user_sends(&chat, user, &photo, "describe", None);
        if sequential {
            answered(&bot, std::slice::from_ref(user), 1).await;
        }
    }
    answered(&bot, &users, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (held, held_peak) = memory(pid);
    for user in &users {
        bot.tg.user_writes(&private(user), user, "more");
        if sequential {
            answered(&bot, std::slice::from_ref(user), 2).await;
        }
    }
    answered(&bot, &users, 2).await;
    let (after, peak) = memory(pid);
    eprintln!("RSS idle {idle:.1} MiB");
    eprintln!(
        "RSS with {conversations} conversations holding a {image_kb} KiB image each: \
         {held:.1} MiB (peak so far {held_peak:.1} MiB)"
    );
    eprintln!(
        "after each asked once more (every request carries its image): {after:.1} MiB, \
         peak {peak:.1} MiB"
    );
    let output = bot.terminate().await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
}
