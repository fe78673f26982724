//! The `Coordination` contract (several instances on one database) as tests, written once
//! against a store that is both `Store` and `Coordination`, and run against every such store
//! (SQLite now; a new store adds its line in `coordination_suite!`'s callers).

use std::sync::Arc;
use std::time::Duration;

use parley::engine::event::PlatformKind;
use parley::engine::ports::{ReplyStatus, Store};
use parley::instances::{Acquired, Coordination, InboxEvent, InstanceId, Scope};
use parley::store::{DatabaseUrl, PgStore, SqliteStore, StoreConfig};

use super::suite::{start, telegram};

/// What the coordination tests run on: the same store seen through both ports, and the same
/// database as a store that records `id` as the instance streaming the replies it starts.
pub struct Both {
    pub store: Arc<dyn Store>,
    pub coord: Arc<dyn Coordination>,
    pub open_as: OpenAs,
}

/// Opens the same database as a store writing replies of the instance it is given.
pub type OpenAs = Box<dyn Fn(&InstanceId) -> Arc<dyn Store> + Send + Sync>;

/// Long enough that no test outlives it by accident on a loaded machine.
const LONG: Duration = Duration::from_secs(600);

/// Runs every coordination test as a `#[tokio::test]` in a module `$store`, each on the new,
/// empty store `$fresh().await` opens (it returns the store and what must outlive it).
macro_rules! coordination_suite {
    ($store:ident, $fresh:path; $($test:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test]
                async fn $test() {
                    // `None`: a store on a server the tests do not have (they say so once).
                    let Some((both, _kept)) = $fresh().await else {
                        return;
                    };
                    $crate::store::coordination::$test(both).await;
                }
            )*
        }
    };
}

coordination_suite!(sqlite, crate::store::coordination::fresh_sqlite;
    an_event_delivered_twice_is_stored_once,
    a_batch_is_stored_in_its_order_each_id_once,
    the_instances_answering_on_each_platform_are_counted_without_the_asker,
    a_released_lease_hands_its_recent_calls_to_the_next_holder,
    a_lease_is_one_instances_until_it_dies_or_retires,
    waiting_events_go_to_their_scopes_holder_in_order_until_started,
    scopes_with_waiting_events_and_no_live_holder_are_free,
    replies_of_a_dead_instance_are_marked_interrupted_once_and_a_live_ones_left_be,
);

coordination_suite!(postgres, crate::store::coordination::fresh_postgres;
    an_event_delivered_twice_is_stored_once,
    a_batch_is_stored_in_its_order_each_id_once,
    the_instances_answering_on_each_platform_are_counted_without_the_asker,
    a_released_lease_hands_its_recent_calls_to_the_next_holder,
    a_lease_is_one_instances_until_it_dies_or_retires,
    waiting_events_go_to_their_scopes_holder_in_order_until_started,
    scopes_with_waiting_events_and_no_live_holder_are_free,
    replies_of_a_dead_instance_are_marked_interrupted_once_and_a_live_ones_left_be,
);

/// A new SQLite store in a file of its own folder.
async fn fresh_sqlite() -> Option<(Both, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    let store = SqliteStore::open(&url).await.expect("opens");
    let same = store.clone();
    let open_as =
        move |id: &InstanceId| -> Arc<dyn Store> { Arc::new(same.clone().for_instance(id)) };
    let store = Arc::new(store);
    let both = Both {
        store: store.clone(),
        coord: store,
        open_as: Box::new(open_as),
    };
    Some((both, dir))
}

/// A new PostgreSQL store on a database of its own; `None` when the tests have no server.
async fn fresh_postgres() -> Option<(Both, ())> {
    let url = crate::support::postgres::database().await?;
    let store = PgStore::open(&StoreConfig::new(DatabaseUrl::new(&url)))
        .await
        .expect("opens");
    let same = store.clone();
    let open_as =
        move |id: &InstanceId| -> Arc<dyn Store> { Arc::new(same.clone().for_instance(id)) };
    let store = Arc::new(store);
    let both = Both {
        store: store.clone(),
        coord: store,
        open_as: Box::new(open_as),
    };
    Some((both, ()))
}

fn event<'a>(scope: &'a Scope, id: &'a str, by: &'a InstanceId) -> InboxEvent<'a> {
    InboxEvent {
        scope,
        platform: PlatformKind::Telegram,
        event_id: id,
        payload: id,
        received_by: by,
    }
}

/// Stores one event as a batch of one: whether it was new.
async fn accept(db: &Arc<dyn Coordination>, event: InboxEvent<'_>) -> Result<bool, String> {
    let kept = db.accept(&[event]).await.map_err(|e| e.to_string())?;
    assert_eq!(kept.len(), 1, "one answer for one event");
    Ok(kept[0])
}

pub async fn a_batch_is_stored_in_its_order_each_id_once(both: Both) {
    let a = InstanceId::new("a");
    let db = &both.coord;
    db.register(&a).await.expect("a");
    let (one, two) = (Scope::named("telegram:1"), Scope::named("telegram:2"));
    assert!(accept(db, event(&one, "5", &a)).await.expect("stored"));
    // Out of id order on purpose: the order given is the order kept.
    let batch = [
        event(&one, "9", &a),
        event(&two, "8", &a),
        event(&one, "5", &a),
        event(&one, "7", &a),
        event(&one, "9", &a),
    ];
    let kept = db.accept(&batch).await.expect("stored");
    assert_eq!(
        kept,
        [true, true, false, true, false],
        "new, new, stored before, new, twice in the batch"
    );
    assert!(db.accept(&[]).await.expect("nothing").is_empty());
    assert!(db.acquire(&a, &one, LONG).await.expect("one").held());
    let order: Vec<_> = db
        .waiting(&a, 10)
        .await
        .expect("a's")
        .into_iter()
        .map(|w| w.payload)
        .collect();
    assert_eq!(order, ["5", "9", "7"], "one's events in the order accepted");
}

pub async fn the_instances_answering_on_each_platform_are_counted_without_the_asker(both: Both) {
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(InstanceId::new);
    let db = &both.coord;
    for me in [&a, &b, &c, &d, &e] {
        db.register(me).await.expect("registered");
    }
    let take = |me: &InstanceId, scope: &str| {
        let (db, me, scope) = (db.clone(), me.clone(), Scope::named(scope));
        async move { assert!(db.acquire(&me, &scope, LONG).await.expect("lease").held()) }
    };
    take(&a, "telegram:1").await;
    take(&b, "telegram:2").await;
    take(&b, "telegram:3").await;
    take(&b, "discord:4").await;
    // Polling is not answering; a released chat is nobody's; a dead instance answers nothing.
    take(&c, Scope::TELEGRAM_POLL).await;
    take(&c, "discord:5").await;
    db.release(&c, &Scope::named("discord:5"), &[])
        .await
        .expect("released");
    take(&d, "telegram:6").await;
    // Receiving Telegram's updates, e answers there before it holds any chat.
    let receiving = Scope::receiving(PlatformKind::Telegram, &e);
    assert_eq!(receiving.chat(), None, "a role, not a chat");
    take(&e, receiving.as_str()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for me in [&a, &b, &c, &e] {
        db.heartbeat(me).await.expect("beats");
    }
    let failover = Duration::from_millis(200);
    let sorted = |mut counts: Vec<(PlatformKind, u32)>| {
        counts.sort_by_key(|(p, _)| p.as_str());
        counts
    };
    let seen_by = |me: &InstanceId| {
        let (db, me) = (db.clone(), me.clone());
        async move { sorted(db.others_active(&me, failover).await.expect("counted")) }
    };
    assert_eq!(
        seen_by(&a).await,
        [(PlatformKind::Discord, 1), (PlatformKind::Telegram, 2)]
    );
    assert_eq!(seen_by(&b).await, [(PlatformKind::Telegram, 2)]);
    assert_eq!(
        seen_by(&c).await,
        [(PlatformKind::Discord, 1), (PlatformKind::Telegram, 3)]
    );
    db.retire(&b).await.expect("b retires");
    db.retire(&e).await.expect("e retires");
    assert!(
        seen_by(&a).await.is_empty(),
        "b and e retired, c polls, d is dead"
    );
}

pub async fn a_released_lease_hands_its_recent_calls_to_the_next_holder(both: Both) {
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    let db = &both.coord;
    db.register(&a).await.expect("a");
    db.register(&b).await.expect("b");
    let scope = Scope::named("telegram:-100");
    assert!(db.acquire(&a, &scope, LONG).await.expect("a").held());
    let calls = [Duration::from_millis(40), Duration::from_millis(2_500)];
    db.release(&a, &scope, &calls).await.expect("released");
    let Acquired::TakenOver {
        since: Some(since),
        recent,
    } = db.acquire(&b, &scope, LONG).await.expect("b")
    else {
        panic!("a released it: b takes it over");
    };
    assert_eq!(
        recent,
        calls.map(|c| c + since),
        "a's calls, as long before now as they were"
    );
    // Taken, the row forgets them: b's own release writes b's.
    db.release(&b, &scope, &[]).await.expect("released");
    let again = db.acquire(&a, &scope, LONG).await.expect("a again");
    assert!(
        matches!(again, Acquired::TakenOver { ref recent, .. } if recent.is_empty()),
        "{again:?}"
    );
}

pub async fn an_event_delivered_twice_is_stored_once(both: Both) {
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    let scope = Scope::named("telegram:42");
    let db = &both.coord;
    assert!(accept(db, event(&scope, "7", &a)).await.expect("stored"));
    assert!(
        !accept(db, event(&scope, "7", &b)).await.expect("seen"),
        "a second delivery, by another instance"
    );
    assert!(db.acquire(&a, &scope, LONG).await.expect("lease").held());
    let waiting = db.waiting(&a, 10).await.expect("read");
    assert_eq!(waiting.len(), 1);
    db.start_event(waiting[0].seq).await.expect("started");
    assert!(
        !accept(db, event(&scope, "7", &a)).await.expect("seen"),
        "still once after it started"
    );
    assert!(db.waiting(&a, 10).await.expect("read").is_empty());
    assert_eq!(db.inbox_depth().await.expect("depth"), 0);
}

pub async fn a_lease_is_one_instances_until_it_dies_or_retires(both: Both) {
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    let db = &both.coord;
    db.register(&a).await.expect("a");
    db.register(&b).await.expect("b");
    let scope = Scope::named(Scope::TELEGRAM_POLL);
    let take = |me: &InstanceId, failover| {
        let (db, me, scope) = (db.clone(), me.clone(), scope.clone());
        async move { db.acquire(&me, &scope, failover).await.expect("acquire") }
    };
    assert_eq!(take(&a, LONG).await, Acquired::Held, "nobody held it");
    assert_eq!(
        take(&a, LONG).await,
        Acquired::Held,
        "held again by its holder"
    );
    assert_eq!(
        take(&b, LONG).await,
        Acquired::Refused,
        "a live holder keeps it"
    );

    // a's heartbeat is older than a short failover: a counts as dead, b takes over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.heartbeat(&b).await.expect("b beats");
    let short = Duration::from_millis(200);
    let died = Acquired::TakenOver {
        since: None,
        recent: Vec::new(),
    };
    assert_eq!(take(&b, short).await, died, "a died holding it");
    assert_eq!(take(&a, LONG).await, Acquired::Refused, "b holds it");

    db.retire(&b).await.expect("b retires");
    let Acquired::TakenOver {
        since: Some(since), ..
    } = take(&a, LONG).await
    else {
        panic!("a retired holder's lease is free, released when it retired");
    };
    assert!(since < LONG);
    db.release(&a, &scope, &[]).await.expect("released");
    db.register(&b).await.expect("b runs again");
    assert!(take(&b, LONG).await.held(), "a released lease is free");
    assert_eq!(take(&a, LONG).await, Acquired::Refused, "and b's now");
}

pub async fn waiting_events_go_to_their_scopes_holder_in_order_until_started(both: Both) {
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    let db = &both.coord;
    db.register(&a).await.expect("a");
    db.register(&b).await.expect("b");
    let (one, two) = (Scope::named("telegram:1"), Scope::named("telegram:2"));
    for (scope, id) in [(&one, "1"), (&two, "2"), (&one, "3"), (&one, "4")] {
        assert!(accept(db, event(scope, id, &b)).await.expect("stored"));
    }
    assert!(db.acquire(&a, &one, LONG).await.expect("one").held());
    assert!(db.acquire(&b, &two, LONG).await.expect("two").held());
    let mine: Vec<_> = db
        .waiting(&a, 10)
        .await
        .expect("a's")
        .into_iter()
        .map(|w| w.payload)
        .collect();
    assert_eq!(
        mine,
        ["1", "3", "4"],
        "a's scope only, in the order accepted"
    );
    let theirs: Vec<_> = db
        .waiting(&b, 10)
        .await
        .expect("b's")
        .into_iter()
        .map(|w| w.payload)
        .collect();
    assert_eq!(theirs, ["2"]);
    let first = db.waiting(&a, 1).await.expect("one")[0].clone();
    assert_eq!((first.payload.as_str(), first.scope), ("1", one));
    assert!(first.age < LONG);
    db.start_event(first.seq).await.expect("started");
    let left: Vec<_> = db
        .waiting(&a, 10)
        .await
        .expect("a's")
        .into_iter()
        .map(|w| w.payload)
        .collect();
    assert_eq!(left, ["3", "4"]);
    assert_eq!(db.inbox_depth().await.expect("depth"), 3);
}

pub async fn scopes_with_waiting_events_and_no_live_holder_are_free(both: Both) {
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    let db = &both.coord;
    db.register(&a).await.expect("a");
    let (held, unheld) = (Scope::named("telegram:1"), Scope::named("telegram:2"));
    accept(db, event(&held, "1", &a)).await.expect("stored");
    accept(db, event(&unheld, "2", &a)).await.expect("stored");
    assert!(db.acquire(&a, &held, LONG).await.expect("held").held());
    assert_eq!(
        db.free_scopes(LONG).await.expect("free"),
        std::slice::from_ref(&unheld)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut free = db
        .free_scopes(Duration::from_millis(200))
        .await
        .expect("free");
    free.sort();
    assert_eq!(
        free,
        [held.clone(), unheld],
        "a dead holder's scope is free"
    );
    db.register(&b).await.expect("b");
    assert!(
        db.acquire(&b, &held, Duration::from_millis(200))
            .await
            .expect("taken over")
            .held()
    );
    let taken: Vec<_> = db
        .waiting(&b, 10)
        .await
        .expect("b's")
        .into_iter()
        .map(|w| w.payload)
        .collect();
    assert_eq!(
        taken,
        ["1"],
        "the dead holder's queued event goes with its scope"
    );
}

pub async fn replies_of_a_dead_instance_are_marked_interrupted_once_and_a_live_ones_left_be(
    both: Both,
) {
    let db = &both.coord;
    let (a, b) = (InstanceId::new("a"), InstanceId::new("b"));
    db.register(&a).await.expect("a");
    db.register(&b).await.expect("b");
    let mut replies = Vec::new();
    for (chat, by) in [("1", Some(&a)), ("2", Some(&b)), ("3", None)] {
        let store = match by {
            Some(id) => (both.open_as)(id),
            None => both.store.clone(),
        };
        let conversation = store.conversation(&telegram(chat)).await.expect("chat").id;
        replies.push(
            start(&*store, conversation, chat, "hi")
                .await
                .expect("streaming")
                .reply,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.heartbeat(&a)
        .await
        .expect("a lives on; b's heartbeat is old");
    let short = Duration::from_millis(200);
    let recovered = db.recover_abandoned(None, short).await.expect("swept");
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [replies[1], replies[2]],
        "dead b's and the unowned one, oldest first"
    );
    assert_eq!(recovered[0].key, telegram("2"));
    let stored = both
        .store
        .last_reply(&telegram("2"))
        .await
        .expect("read")
        .expect("one");
    assert_eq!(stored.status, ReplyStatus::Partial);
    assert!(
        db.recover_abandoned(None, short)
            .await
            .expect("again")
            .is_empty(),
        "marked once"
    );
    let status = |chat| {
        let store = both.store.clone();
        async move {
            store
                .last_reply(&telegram(chat))
                .await
                .expect("read")
                .expect("one")
                .status
        }
    };
    assert_eq!(
        status("1").await,
        ReplyStatus::Streaming,
        "a live instance's reply is left be"
    );
    assert_eq!(status("2").await, ReplyStatus::Partial);
    let restarted = db
        .recover_abandoned(Some(&a), LONG)
        .await
        .expect("a's earlier run");
    assert_eq!(
        restarted.iter().map(|r| r.id).collect::<Vec<_>>(),
        [replies[0]]
    );
    assert_eq!(status("1").await, ReplyStatus::Partial);
}
