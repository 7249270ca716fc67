//! The disk adapters of `queuematch dev --data-dir` across a restart: what one process wrote, the next
//! one opening the same file finds, on virtual time.
//!
//! Dropping an adapter stands in for the process ending; each write was durable before it returned,
//! so a drop is no gentler than a `kill -9` (that case is `crates/cli/tests/restart.rs`, on the real
//! binary).

use queuematch_core::ports::store::{Condition, IdempotencyToken, Index, IndexKey, Item, Key, Query, Write};
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue};
use queuematch_local::{DiskQueue, DiskStore, ManualClock, QueueConfig};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch directory: {e}"));
    let store = dir.path().join("store.redb");
    let queue = dir.path().join("queue.redb");
    (dir, store, queue)
}

fn store(clock: &ManualClock, path: &Path) -> DiskStore {
    DiskStore::open(clock.clone(), path).unwrap_or_else(|e| panic!("opening the store: {e}"))
}

fn queue(clock: &ManualClock, path: &Path) -> DiskQueue {
    DiskQueue::open(clock.clone(), QueueConfig::default(), path).unwrap_or_else(|e| panic!("opening the queue: {e}"))
}

const VISIBILITY: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_reopened_store_has_every_item_at_its_version_in_its_indexes() {
    let (_dir, path, _) = scratch();
    let clock = ManualClock::default();
    let ticket = Item::new(
        Key::new("TICKET#t-1", "TICKET"),
        json!({"status": "SEARCHING", "skill": 1500.25}),
    )
    .with_gsi1(IndexKey::new("TICKETS#SEARCHING", "0001#t-1"))
    .with_pool(IndexKey::new("POOL#q#p#0", "0001#t-1"))
    .expiring_at(clock.now().plus(Duration::from_secs(3_600)));
    {
        let s = store(&clock, &path);
        s.put(ticket.clone(), Condition::Absent).await.unwrap();
        s.put(ticket.clone(), Condition::Version(1)).await.unwrap();
        s.put(Item::new(Key::new("GONE", "S"), json!({})), Condition::Any)
            .await
            .unwrap();
        s.delete(&Key::new("GONE", "S"), Condition::Exists).await.unwrap();
    }
    let s = store(&clock, &path);
    let got = s.get(&ticket.key).await.unwrap().unwrap();
    assert_eq!((got.item, got.version), (ticket.clone(), 2));
    assert_eq!(s.get(&Key::new("GONE", "S")).await.unwrap(), None);
    for (index, partition) in [(Index::Pool, "POOL#q#p#0"), (Index::Gsi1, "TICKETS#SEARCHING")] {
        let page = s.query(Query::new(index, partition, 10)).await.unwrap();
        let keys: Vec<&Key> = page.items.iter().map(|i| &i.item.key).collect();
        assert_eq!(keys, [&ticket.key], "{index:?}");
    }
    // The version goes on from where it was: a stale writer from before the restart still conflicts.
    let stale = s.put(ticket.clone(), Condition::Version(1)).await;
    assert!(matches!(stale, Err(PortError::ConditionFailed { .. })), "{stale:?}");
    // And the TTL still holds.
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(s.get(&ticket.key).await.unwrap(), None);
}

#[tokio::test]
async fn an_idempotency_token_is_remembered_across_a_restart() {
    let (_dir, path, _) = scratch();
    let clock = ManualClock::default();
    let token = IdempotencyToken::new("match-1").unwrap();
    let commit = || {
        vec![
            Write::put(
                Item::new(Key::new("MATCH#1", "MATCH"), json!({"n": 1})),
                Condition::Absent,
            ),
            Write::put(
                Item::new(Key::new("TICKET#a", "TICKET"), json!({"n": 1})),
                Condition::Absent,
            ),
        ]
    };
    store(&clock, &path)
        .transact_write(commit(), Some(token.clone()))
        .await
        .unwrap();
    let s = store(&clock, &path);
    // The retry after the restart succeeds without writing (its conditions would fail otherwise)...
    s.transact_write(commit(), Some(token.clone())).await.unwrap();
    assert_eq!(s.get(&Key::new("MATCH#1", "MATCH")).await.unwrap().unwrap().version, 1);
    // ...and the token still refuses other operations.
    let other = vec![Write::put(
        Item::new(Key::new("MATCH#2", "MATCH"), json!({})),
        Condition::Absent,
    )];
    let reuse = s.transact_write(other, Some(token.clone())).await;
    assert!(matches!(reuse, Err(PortError::Invalid(_))), "{reuse:?}");
    // Past its window it is forgotten, on disk too.
    clock.advance(Duration::from_millis(IdempotencyToken::WINDOW_MS));
    s.put(Item::new(Key::new("ANY", "S"), json!({})), Condition::Any)
        .await
        .unwrap();
    drop(s);
    let replay = store(&clock, &path).transact_write(commit(), Some(token)).await;
    assert!(
        matches!(replay, Err(PortError::ConditionFailed { operation: Some(0), .. })),
        "{replay:?}"
    );
}

#[tokio::test]
async fn a_failed_transaction_leaves_nothing_on_disk() {
    let (_dir, path, _) = scratch();
    let clock = ManualClock::default();
    {
        let s = store(&clock, &path);
        s.put(Item::new(Key::new("B", "S"), json!({})), Condition::Any)
            .await
            .unwrap();
        let writes = vec![
            Write::put(Item::new(Key::new("A", "S"), json!({})), Condition::Absent),
            Write::put(Item::new(Key::new("B", "S"), json!({})), Condition::Absent),
        ];
        let failed = s.transact_write(writes, None).await;
        assert!(matches!(
            failed,
            Err(PortError::ConditionFailed { operation: Some(1), .. })
        ));
    }
    let s = store(&clock, &path);
    assert_eq!(s.get(&Key::new("A", "S")).await.unwrap(), None);
    assert_eq!(s.get(&Key::new("B", "S")).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn a_message_in_flight_at_a_restart_comes_back_after_its_visibility_timeout() {
    let (_dir, _, path) = scratch();
    let clock = ManualClock::default();
    let (id, first) = {
        let q = queue(&clock, &path);
        let id = q.send("ticket".into(), Duration::ZERO).await.unwrap();
        let first = q.receive(1, VISIBILITY).await.unwrap();
        assert_eq!(first.len(), 1);
        (id, first.into_iter().next().unwrap())
    };
    let q = queue(&clock, &path);
    assert!(
        q.receive(10, VISIBILITY).await.unwrap().is_empty(),
        "still hidden after the restart"
    );
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 1));
    clock.advance(VISIBILITY);
    let again = q.receive(10, VISIBILITY).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].message_id.as_str(), again[0].body.as_str()),
        (id.as_str(), "ticket")
    );
    assert_eq!(again[0].receive_count, 2, "the receive count survived");
    assert_eq!(again[0].sent_at, first.sent_at);
    assert_ne!(again[0].receipt, first.receipt);
    // The receipt of the receive before the restart is stale now: it deletes nothing.
    q.delete(&first.receipt).await.unwrap();
    q.delete(&again[0].receipt).await.unwrap();
    drop(q);
    let q = queue(&clock, &path);
    clock.advance(VISIBILITY);
    assert!(
        q.receive(10, VISIBILITY).await.unwrap().is_empty(),
        "the delete survived"
    );
    assert_eq!(q.depth().await.unwrap(), Default::default());
}

#[tokio::test]
async fn receives_counted_across_restarts_send_a_message_to_the_dead_letters() {
    let (_dir, _, path) = scratch();
    let clock = ManualClock::default();
    let id = queue(&clock, &path)
        .send("poison".into(), Duration::ZERO)
        .await
        .unwrap();
    // Every receiver dies before deleting it: one receive per process.
    for _ in 0..5 {
        let q = queue(&clock, &path);
        assert_eq!(q.receive(1, VISIBILITY).await.unwrap().len(), 1);
        clock.advance(VISIBILITY);
    }
    let q = queue(&clock, &path);
    assert!(q.receive(10, VISIBILITY).await.unwrap().is_empty());
    drop(q);
    let q = queue(&clock, &path);
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].message_id.as_str(), dead[0].receive_count), (id.as_str(), 5));
    assert_eq!(q.redrive().await.unwrap(), 1);
    drop(q);
    let back = queue(&clock, &path).receive(10, VISIBILITY).await.unwrap();
    assert_eq!((back[0].message_id.as_str(), back[0].receive_count), (id.as_str(), 1));
}

#[tokio::test]
async fn a_delay_survives_a_restart_and_ids_are_never_reused() {
    let (_dir, _, path) = scratch();
    let clock = ManualClock::default();
    let (first, delayed) = {
        let q = queue(&clock, &path);
        let first = q.send("now".into(), Duration::ZERO).await.unwrap();
        let delayed = q.send("later".into(), Duration::from_secs(60)).await.unwrap();
        let got = q.receive(10, VISIBILITY).await.unwrap();
        q.delete(&got[0].receipt).await.unwrap();
        (first, delayed)
    };
    let q = queue(&clock, &path);
    assert!(q.receive(10, VISIBILITY).await.unwrap().is_empty(), "still delayed");
    let third = q.send("new".into(), Duration::ZERO).await.unwrap();
    assert!(third != first && third != delayed, "{third} reuses an id");
    clock.advance(Duration::from_secs(60));
    let mut bodies: Vec<String> = q
        .receive(10, VISIBILITY)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["later", "new"]);
}

#[tokio::test]
async fn a_file_in_use_cannot_be_opened_twice() {
    let (_dir, store_path, queue_path) = scratch();
    let clock = ManualClock::default();
    let _open = store(&clock, &store_path);
    let again = DiskStore::open(clock.clone(), &store_path);
    assert!(again.is_err(), "two stores on one file");
    let _q = queue(&clock, &queue_path);
    assert!(DiskQueue::open(clock.clone(), QueueConfig::default(), &queue_path).is_err());
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_naming_the_file() {
    let (_dir, path, _) = scratch();
    std::fs::write(&path, b"not a redb file at all").unwrap();
    let err = DiskStore::open(ManualClock::default(), &path).unwrap_err();
    assert!(err.to_string().contains("store.redb"), "{err}");
}

/// What opening the store, then the queue, at `store_path` and `queue_path` says, if it refuses.
fn refusals(store_path: &Path, queue_path: &Path) -> (Option<String>, Option<String>) {
    let clock = ManualClock::default();
    let store = DiskStore::open(clock.clone(), store_path).err().map(|e| e.to_string());
    let queue = DiskQueue::open(clock, QueueConfig::default(), queue_path)
        .err()
        .map(|e| e.to_string());
    (store, queue)
}

#[tokio::test]
async fn an_empty_file_is_refused_not_taken_for_a_new_database() {
    let (_dir, store_path, queue_path) = scratch();
    std::fs::write(&store_path, b"").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&queue_path, b"").unwrap_or_else(|e| panic!("{e}"));
    let (store, queue) = refusals(&store_path, &queue_path);
    for refused in [store, queue] {
        let refused = refused.unwrap_or_else(|| panic!("an empty file was opened"));
        assert!(
            refused.contains(".redb") && refused.contains("it is empty"),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_file_is_created_whole_or_not_at_all() {
    // GIVEN what a start killed while creating the file leaves beside it
    let (_dir, store_path, _) = scratch();
    let creating = store_path.with_extension("redb.creating");
    std::fs::write(&creating, vec![0u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
    // WHEN the store opens THEN it is made afresh, and the half-made file is gone
    let clock = ManualClock::default();
    drop(store(&clock, &store_path));
    assert!(!creating.exists());
    drop(store(&clock, &store_path));
}

#[tokio::test]
async fn the_store_and_the_queue_refuse_each_other_s_file_and_leave_it_as_it_is() {
    // GIVEN a store file and a queue file, each with something in it
    let (_dir, store_path, queue_path) = scratch();
    let clock = ManualClock::default();
    {
        let s = store(&clock, &store_path);
        s.put(Item::new(Key::new("A", "B"), json!({})), Condition::Absent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let q = queue(&clock, &queue_path);
        q.send("m".into(), Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let before = std::fs::read(&queue_path).unwrap_or_else(|e| panic!("{e}"));
    // WHEN each is opened as the other
    let (store_on_queue, queue_on_store) = refusals(&queue_path, &store_path);
    // THEN both refuse, naming the tables that are not theirs, and the file is unchanged
    let store_on_queue = store_on_queue.unwrap_or_else(|| panic!("the store opened the queue's file"));
    assert!(
        store_on_queue.contains("queue.redb") && store_on_queue.contains("the store never writes"),
        "{store_on_queue}"
    );
    let queue_on_store = queue_on_store.unwrap_or_else(|| panic!("the queue opened the store's file"));
    assert!(
        queue_on_store.contains("store.redb") && queue_on_store.contains("items"),
        "{queue_on_store}"
    );
    assert_eq!(std::fs::read(&queue_path).unwrap_or_else(|e| panic!("{e}")), before);
}

#[tokio::test]
async fn a_damaged_file_is_an_error_naming_it_not_a_panic() {
    // GIVEN a store with items, cut short as a disk fault or a bad copy would leave it
    let (_dir, path, _) = scratch();
    let clock = ManualClock::default();
    {
        let s = store(&clock, &path);
        for i in 0..200 {
            let item = Item::new(Key::new(format!("K#{i}"), "S"), json!({"pad": "x".repeat(200)}));
            s.put(item, Condition::Absent).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap_or_else(|e| panic!("{e}"));
    // WHEN it is opened THEN the error names the file
    let refused = DiskStore::open(clock, &path).err().map(|e| e.to_string());
    let refused = refused.unwrap_or_else(|| panic!("a damaged file was opened"));
    assert!(refused.contains("store.redb"), "{refused}");
}
