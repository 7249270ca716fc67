//! The `Store` contract: versions, conditions, transactions, the indexes and TTL, as DynamoDB does
//! them.
//!
//! Every case starts from an empty store. Keys are spelled as the typed layer spells them, but the
//! suite works on raw items: it pins the item port down, whatever sits on top.

use crate::{ok, Subject, Time};
use futures::future::join_all;
use proptest::prelude::*;
use queuematch_core::ports::store::{
    Condition, Cursor, IdempotencyToken, Index, IndexKey, Item, Key, Query, Store, Write, MAX_TRANSACTION_OPERATIONS,
};
use queuematch_core::ports::PortError;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Generates the store suite's tests from `$make`, an `async fn() -> Subject<impl Store, impl Time>`
/// giving an empty store.
#[macro_export]
macro_rules! store_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            $make,
            store,
            [
                a_missing_item_is_none,
                an_item_round_trips_with_every_attribute,
                every_write_bumps_the_version,
                put_if_absent_conflicts_when_present,
                a_stale_version_conflicts_and_changes_nothing,
                exists_and_version_need_the_item,
                conditional_deletes,
                compare_and_swap_has_one_winner,
                a_failed_transaction_writes_nothing_and_names_its_operation,
                a_transaction_applies_puts_deletes_and_checks_together,
                transactions_hold_at_most_100_operations_on_distinct_keys,
                a_repeated_idempotency_token_writes_once,
                the_pool_index_is_sparse_and_in_age_order,
                dropping_pool_keys_leaves_the_pool,
                queries_paginate_in_order_both_ways,
                a_cursor_resumes_after_its_item,
                a_table_query_narrows_to_a_prefix,
                a_query_reads_below_a_sort_key_either_way,
                expired_items_are_invisible_and_absent,
                expired_items_are_absent_in_transactions,
                malformed_requests_are_invalid,
            ]
        );
        #[test]
        fn transactions_agree_with_a_model() {
            $crate::store::transactions_agree_with_a_model(|| $make());
        }
    };
}

fn key(pk: &str) -> Key {
    Key::new(pk, "S")
}

fn item(pk: &str, n: i64) -> Item {
    Item::new(key(pk), json!({ "n": n }))
}

fn pooled(pk: &str, pool: &str, sort: &str) -> Item {
    item(pk, 0).with_pool(IndexKey::new(pool, sort))
}

/// The body's `n`, to tell writes apart.
async fn n_of<S: Store>(store: &S, pk: &str) -> Option<i64> {
    ok(store.get(&key(pk)).await, "get").and_then(|s| s.item.body["n"].as_i64())
}

fn is_condition_failed(result: &Result<impl std::fmt::Debug, PortError>) -> bool {
    matches!(result, Err(PortError::ConditionFailed { .. }))
}

/// Every page of `query` from its cursor on, followed to the end; panics if the pages loop.
async fn all_pages<S: Store>(store: &S, query: Query) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = query.after.clone();
    for _ in 0..10_000 {
        let page = ok(store.query(query.clone().after(after)).await, "query");
        assert!(
            page.items.len() <= query.limit,
            "a page of {} items for a limit of {}",
            page.items.len(),
            query.limit
        );
        seen.extend(page.items.into_iter().map(|s| s.item.key.pk));
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
    panic!("the query never ended: {query:?}")
}

pub async fn a_missing_item_is_none<S: Store, T: Time>(s: Subject<S, T>) {
    assert_eq!(ok(s.port.get(&key("NOPE")).await, "get"), None);
}

pub async fn an_item_round_trips_with_every_attribute<S: Store, T: Time>(s: Subject<S, T>) {
    let later = s.time.now().plus(Duration::from_secs(3_600));
    let written = Item::new(
        Key::new("TICKET#t-1", "TICKET"),
        json!({ "status": "SEARCHING", "players": ["p"] }),
    )
    .expiring_at(later)
    .with_gsi1(IndexKey::new("TICKETS#SEARCHING", "0001#t-1"))
    .with_pool(IndexKey::new("POOL#q#p#0", "0001#t-1"));
    assert_eq!(ok(s.port.put(written.clone(), Condition::Absent).await, "put"), 1);
    let read = ok(s.port.get(&written.key).await, "get");
    assert_eq!(read.map(|r| (r.item, r.version)), Some((written, 1)));
}

pub async fn every_write_bumps_the_version<S: Store, T: Time>(s: Subject<S, T>) {
    assert_eq!(ok(s.port.put(item("A", 1), Condition::Any).await, "first put"), 1);
    assert_eq!(ok(s.port.put(item("A", 2), Condition::Any).await, "second put"), 2);
    assert_eq!(ok(s.port.put(item("A", 3), Condition::Version(2)).await, "swap"), 3);
    assert_eq!(ok(s.port.put(item("A", 4), Condition::Exists).await, "update"), 4);
    let stored = ok(s.port.get(&key("A")).await, "get");
    assert_eq!(stored.map(|s| (s.version, s.item.body)), Some((4, json!({ "n": 4 }))));
}

pub async fn put_if_absent_conflicts_when_present<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("A", 1), Condition::Absent).await, "create");
    let again = s.port.put(item("A", 2), Condition::Absent).await;
    match again {
        Err(PortError::ConditionFailed {
            key: k,
            operation: None,
        }) => assert_eq!(k, key("A")),
        other => panic!("a second create must fail its condition, got {other:?}"),
    }
    assert_eq!(n_of(&s.port, "A").await, Some(1), "the failed put changed the item");
}

pub async fn a_stale_version_conflicts_and_changes_nothing<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("A", 1), Condition::Absent).await, "create");
    ok(s.port.put(item("A", 2), Condition::Version(1)).await, "first writer");
    let second = s.port.put(item("A", 3), Condition::Version(1)).await;
    assert!(is_condition_failed(&second), "{second:?}");
    let stored = ok(s.port.get(&key("A")).await, "get");
    assert_eq!(
        stored.map(|s| (s.version, s.item.body["n"].clone())),
        Some((2, json!(2)))
    );
}

pub async fn exists_and_version_need_the_item<S: Store, T: Time>(s: Subject<S, T>) {
    assert!(is_condition_failed(&s.port.put(item("A", 1), Condition::Exists).await));
    assert!(is_condition_failed(
        &s.port.put(item("A", 1), Condition::Version(1)).await
    ));
    assert_eq!(ok(s.port.get(&key("A")).await, "get"), None);
}

pub async fn conditional_deletes<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("A", 1), Condition::Absent).await, "create");
    ok(s.port.put(item("A", 2), Condition::Any).await, "update");
    assert!(is_condition_failed(
        &s.port.delete(&key("A"), Condition::Version(1)).await
    ));
    assert_eq!(n_of(&s.port, "A").await, Some(2));
    ok(
        s.port.delete(&key("A"), Condition::Version(2)).await,
        "delete at the current version",
    );
    assert_eq!(ok(s.port.get(&key("A")).await, "get"), None);
    ok(
        s.port.delete(&key("A"), Condition::Any).await,
        "deleting what is gone is fine",
    );
    assert!(is_condition_failed(&s.port.delete(&key("A"), Condition::Exists).await));
    assert_eq!(
        ok(s.port.put(item("A", 3), Condition::Absent).await, "re-create"),
        1,
        "a new item starts at 1"
    );
}

/// Ten writers read version 1 and race to replace it: exactly one wins.
pub async fn compare_and_swap_has_one_winner<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("A", 0), Condition::Absent).await, "create");
    let racers = (1..=10).map(|n| s.port.put(item("A", n), Condition::Version(1)));
    let results = join_all(racers).await;
    let winners: Vec<i64> = (1..=10)
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results.iter().filter(|r| r.is_err()).all(is_condition_failed),
        "{results:?}"
    );
    assert_eq!(n_of(&s.port, "A").await, winners.first().copied());
}

pub async fn a_failed_transaction_writes_nothing_and_names_its_operation<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("GUARD", 0), Condition::Absent).await, "guard");
    ok(s.port.put(item("OLD", 0), Condition::Absent).await, "old");
    let writes = vec![
        Write::put(item("NEW-1", 1), Condition::Absent),
        Write::delete(key("OLD"), Condition::Version(1)),
        Write::put(item("NEW-2", 1), Condition::Any),
        Write::put(item("GUARD", 1), Condition::Absent),
    ];
    match s.port.transact_write(writes, None).await {
        Err(PortError::ConditionFailed { key: k, operation }) => {
            assert_eq!((k, operation), (key("GUARD"), Some(3)));
        }
        other => panic!("the guard's condition must fail the transaction, got {other:?}"),
    }
    assert_eq!(n_of(&s.port, "NEW-1").await, None);
    assert_eq!(n_of(&s.port, "NEW-2").await, None);
    assert_eq!(n_of(&s.port, "OLD").await, Some(0), "the delete was applied");
    assert_eq!(ok(s.port.get(&key("GUARD")).await, "get").map(|g| g.version), Some(1));
}

pub async fn a_transaction_applies_puts_deletes_and_checks_together<S: Store, T: Time>(s: Subject<S, T>) {
    ok(s.port.put(item("KEEP", 0), Condition::Absent).await, "keep");
    ok(s.port.put(item("GONE", 0), Condition::Absent).await, "gone");
    ok(s.port.put(item("BUMP", 0), Condition::Absent).await, "bump");
    let writes = vec![
        Write::check(key("KEEP"), Condition::Version(1)),
        Write::delete(key("GONE"), Condition::Exists),
        Write::put(item("BUMP", 1), Condition::Version(1)),
        Write::put(item("MADE", 1), Condition::Absent),
    ];
    ok(s.port.transact_write(writes, None).await, "transaction");
    assert_eq!(
        ok(s.port.get(&key("KEEP")).await, "get").map(|k| k.version),
        Some(1),
        "a check writes nothing"
    );
    assert_eq!(n_of(&s.port, "GONE").await, None);
    assert_eq!(ok(s.port.get(&key("BUMP")).await, "get").map(|b| b.version), Some(2));
    assert_eq!(n_of(&s.port, "MADE").await, Some(1));

    let failing_check = vec![
        Write::put(item("LATER", 1), Condition::Absent),
        Write::check(key("KEEP"), Condition::Version(7)),
    ];
    let result = s.port.transact_write(failing_check, None).await;
    assert!(
        matches!(result, Err(PortError::ConditionFailed { operation: Some(1), .. })),
        "{result:?}"
    );
    assert_eq!(n_of(&s.port, "LATER").await, None);
}

pub async fn transactions_hold_at_most_100_operations_on_distinct_keys<S: Store, T: Time>(s: Subject<S, T>) {
    let writes = |n: usize, prefix: &str| -> Vec<Write> {
        (0..n)
            .map(|i| Write::put(item(&format!("{prefix}#{i}"), 1), Condition::Absent))
            .collect()
    };
    let too_many = s
        .port
        .transact_write(writes(MAX_TRANSACTION_OPERATIONS + 1, "BIG"), None)
        .await;
    assert!(matches!(too_many, Err(PortError::Invalid(_))), "{too_many:?}");
    assert_eq!(n_of(&s.port, "BIG#0").await, None, "a refused transaction wrote");

    ok(
        s.port
            .transact_write(writes(MAX_TRANSACTION_OPERATIONS, "FULL"), None)
            .await,
        "100 operations",
    );
    for i in [0, 50, 99] {
        assert_eq!(n_of(&s.port, &format!("FULL#{i}")).await, Some(1));
    }

    let empty = s.port.transact_write(Vec::new(), None).await;
    assert!(matches!(empty, Err(PortError::Invalid(_))), "{empty:?}");
    let twice = vec![
        Write::put(item("TWICE", 1), Condition::Any),
        Write::delete(key("TWICE"), Condition::Any),
    ];
    let twice = s.port.transact_write(twice, None).await;
    assert!(matches!(twice, Err(PortError::Invalid(_))), "{twice:?}");
    assert_eq!(n_of(&s.port, "TWICE").await, None);
}

pub async fn a_repeated_idempotency_token_writes_once<S: Store, T: Time>(s: Subject<S, T>) {
    let token = ok(IdempotencyToken::new("commit-m-1"), "token");
    let writes = vec![
        Write::put(item("MATCH", 1), Condition::Absent),
        Write::put(item("TICKET", 1), Condition::Any),
    ];
    ok(
        s.port.transact_write(writes.clone(), Some(token.clone())).await,
        "first commit",
    );
    ok(
        s.port.transact_write(writes.clone(), Some(token.clone())).await,
        "a retried commit succeeds",
    );
    assert_eq!(
        ok(s.port.get(&key("TICKET")).await, "get").map(|t| t.version),
        Some(1),
        "the retry wrote again"
    );

    let other = vec![Write::put(item("ELSE", 1), Condition::Any)];
    let reused = s.port.transact_write(other, Some(token)).await;
    assert!(
        matches!(reused, Err(PortError::Invalid(_))),
        "a token reused for other writes: {reused:?}"
    );
    assert_eq!(n_of(&s.port, "ELSE").await, None);

    let fresh = ok(IdempotencyToken::new("commit-m-1-again"), "token");
    let replay = s.port.transact_write(writes, Some(fresh)).await;
    assert!(
        is_condition_failed(&replay),
        "a new token runs the conditions again: {replay:?}"
    );
}

pub async fn the_pool_index_is_sparse_and_in_age_order<S: Store, T: Time>(s: Subject<S, T>) {
    let pool = "POOL#ranked#eu#0";
    for (pk, sort) in [
        ("T-3", "0003#T-3"),
        ("T-1", "0001#T-1"),
        ("T-4", "0004#T-4"),
        ("T-2", "0002#T-2"),
    ] {
        ok(
            s.port.put(pooled(pk, pool, sort), Condition::Absent).await,
            "pooled ticket",
        );
    }
    ok(
        s.port.put(item("NOT-POOLED", 0), Condition::Absent).await,
        "unpooled item",
    );
    ok(
        s.port
            .put(pooled("OTHER-SHARD", "POOL#ranked#eu#1", "0000#X"), Condition::Absent)
            .await,
        "other shard",
    );
    let gsi_only = item("GSI-ONLY", 0).with_gsi1(IndexKey::new(pool, "0000#G"));
    ok(
        s.port.put(gsi_only, Condition::Absent).await,
        "an item whose gsi1pk looks like a pool",
    );
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Pool, pool, 100)).await,
        ["T-1", "T-2", "T-3", "T-4"]
    );
}

pub async fn dropping_pool_keys_leaves_the_pool<S: Store, T: Time>(s: Subject<S, T>) {
    let pool = "POOL#ranked#eu#0";
    ok(s.port.put(pooled("T-1", pool, "1#T-1"), Condition::Absent).await, "t-1");
    ok(s.port.put(pooled("T-2", pool, "2#T-2"), Condition::Absent).await, "t-2");
    ok(s.port.put(item("T-1", 1), Condition::Version(1)).await, "t-1 matched");
    assert_eq!(all_pages(&s.port, Query::new(Index::Pool, pool, 10)).await, ["T-2"]);
    ok(
        s.port.put(pooled("T-1", pool, "1#T-1"), Condition::Version(2)).await,
        "t-1 requeued",
    );
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Pool, pool, 10)).await,
        ["T-1", "T-2"]
    );
    ok(s.port.delete(&key("T-2"), Condition::Any).await, "t-2 deleted");
    assert_eq!(all_pages(&s.port, Query::new(Index::Pool, pool, 10)).await, ["T-1"]);
}

pub async fn queries_paginate_in_order_both_ways<S: Store, T: Time>(s: Subject<S, T>) {
    let mut expected = Vec::new();
    for i in (0..25).rev() {
        let pk = format!("T-{i:02}");
        let it = pooled(&pk, "POOL#q#p#0", &format!("{i:04}#{pk}"))
            .with_gsi1(IndexKey::new("TICKETS#SEARCHING", format!("{i:04}")));
        ok(s.port.put(it, Condition::Absent).await, "ticket");
        expected.insert(0, pk);
    }
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Pool, "POOL#q#p#0", 10)).await,
        expected
    );
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Gsi1, "TICKETS#SEARCHING", 7)).await,
        expected
    );
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Pool, "POOL#q#p#0", 1)).await,
        expected
    );
    let newest_first: Vec<String> = expected.iter().rev().cloned().collect();
    assert_eq!(
        all_pages(&s.port, Query::new(Index::Gsi1, "TICKETS#SEARCHING", 10).descending()).await,
        newest_first
    );
    assert!(all_pages(&s.port, Query::new(Index::Pool, "POOL#empty#p#0", 10))
        .await
        .is_empty());
}

pub async fn a_cursor_resumes_after_its_item<S: Store, T: Time>(s: Subject<S, T>) {
    let pool = "POOL#q#p#0";
    for i in [10, 20, 30, 40] {
        ok(
            s.port
                .put(pooled(&format!("T-{i}"), pool, &format!("{i}")), Condition::Absent)
                .await,
            "ticket",
        );
    }
    let first = ok(s.port.query(Query::new(Index::Pool, pool, 2)).await, "first page");
    let pks: Vec<&str> = first.items.iter().map(|s| s.item.key.pk.as_str()).collect();
    assert_eq!(pks, ["T-10", "T-20"]);
    let Some(cursor) = first.next else {
        panic!("more pages follow")
    };
    // Written between pages: one before the cursor, one after it.
    ok(s.port.put(pooled("T-15", pool, "15"), Condition::Absent).await, "t-15");
    ok(s.port.put(pooled("T-35", pool, "35"), Condition::Absent).await, "t-35");
    let rest = all_pages(&s.port, Query::new(Index::Pool, pool, 2).after(Some(cursor))).await;
    assert_eq!(rest, ["T-30", "T-35", "T-40"]);
}

pub async fn a_table_query_narrows_to_a_prefix<S: Store, T: Time>(s: Subject<S, T>) {
    let session = "SESSION#s-1";
    ok(
        s.port
            .put(Item::new(Key::new(session, "SESSION"), json!({})), Condition::Absent)
            .await,
        "session",
    );
    for sk in ["EVENT#0003#0", "EVENT#0001#0", "EVENT#0001#1", "EVENT#0002#0"] {
        ok(
            s.port
                .put(Item::new(Key::new(session, sk), json!({ "sk": sk })), Condition::Absent)
                .await,
            "event",
        );
    }
    ok(
        s.port
            .put(
                Item::new(Key::new("SESSION#s-2", "EVENT#0000#0"), json!({})),
                Condition::Absent,
            )
            .await,
        "other",
    );
    let mut after = None;
    let mut sks = Vec::new();
    loop {
        let q = Query::new(Index::Table, session, 3).with_prefix("EVENT#").after(after);
        let page = ok(s.port.query(q).await, "timeline");
        sks.extend(page.items.iter().map(|i| i.item.key.sk.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sks, ["EVENT#0001#0", "EVENT#0001#1", "EVENT#0002#0", "EVENT#0003#0"]);
}

pub async fn a_query_reads_below_a_sort_key_either_way<S: Store, T: Time>(s: Subject<S, T>) {
    let pool = "POOL#q#p#9";
    for (pk, sort) in [
        ("T-10", "10"),
        ("T-20", "20"),
        ("T-30", "30"),
        ("T-40", "40"),
        ("T-50", "50"),
    ] {
        ok(s.port.put(pooled(pk, pool, sort), Condition::Absent).await, pk);
    }
    // Newest first from just under a sort key, page by page: what an operators' listing resumes at.
    let newest_first = Query::new(Index::Pool, pool, 2).descending().before("40");
    assert_eq!(all_pages(&s.port, newest_first).await, ["T-30", "T-20", "T-10"]);
    // Oldest first, up to it.
    let oldest_first = Query::new(Index::Pool, pool, 2).before("30");
    assert_eq!(all_pages(&s.port, oldest_first).await, ["T-10", "T-20"]);
    // Below the lowest: nothing.
    let nothing = Query::new(Index::Pool, pool, 2).descending().before("10");
    assert_eq!(all_pages(&s.port, nothing).await, Vec::<String>::new());
    // One sort-key condition per query, as DynamoDB takes.
    let both = Query::new(Index::Pool, pool, 2).with_prefix("1").before("30");
    assert!(matches!(s.port.query(both).await, Err(PortError::Invalid(_))));
}

pub async fn expired_items_are_invisible_and_absent<S: Store, T: Time>(s: Subject<S, T>) {
    let pool = "POOL#q#p#0";
    let expires = s.time.now().plus(Duration::from_secs(2));
    let lease = pooled("LEASE", pool, "1")
        .with_gsi1(IndexKey::new("LEASES", "1"))
        .expiring_at(expires);
    ok(s.port.put(lease, Condition::Absent).await, "lease");
    ok(s.port.put(pooled("STAYS", pool, "2"), Condition::Absent).await, "stays");
    assert_eq!(n_of(&s.port, "LEASE").await, Some(0), "visible before its TTL");
    assert!(is_condition_failed(
        &s.port.put(item("LEASE", 1), Condition::Absent).await
    ));

    s.time.advance(Duration::from_secs(3)).await;
    assert_eq!(
        ok(s.port.get(&key("LEASE")).await, "get"),
        None,
        "visible after its TTL"
    );
    assert_eq!(all_pages(&s.port, Query::new(Index::Pool, pool, 10)).await, ["STAYS"]);
    assert!(all_pages(&s.port, Query::new(Index::Gsi1, "LEASES", 10))
        .await
        .is_empty());
    assert!(is_condition_failed(
        &s.port.put(item("LEASE", 1), Condition::Version(1)).await
    ));
    assert!(is_condition_failed(
        &s.port.put(item("LEASE", 1), Condition::Exists).await
    ));
    assert_eq!(
        ok(
            s.port.put(item("LEASE", 2), Condition::Absent).await,
            "retake the lease"
        ),
        1
    );
    assert_eq!(n_of(&s.port, "LEASE").await, Some(2));
}

pub async fn expired_items_are_absent_in_transactions<S: Store, T: Time>(s: Subject<S, T>) {
    let expires = s.time.now().plus(Duration::from_secs(1));
    ok(
        s.port
            .put(item("NONCE", 0).expiring_at(expires), Condition::Absent)
            .await,
        "nonce",
    );
    let replay = vec![Write::put(item("NONCE", 1), Condition::Absent)];
    assert!(is_condition_failed(&s.port.transact_write(replay.clone(), None).await));
    s.time.advance(Duration::from_secs(2)).await;
    ok(s.port.transact_write(replay, None).await, "an expired nonce is absent");
    assert_eq!(ok(s.port.get(&key("NONCE")).await, "get").map(|n| n.version), Some(1));
}

pub async fn malformed_requests_are_invalid<S: Store, T: Time>(s: Subject<S, T>) {
    let invalid = |r: &Result<_, PortError>| matches!(r, Err(PortError::Invalid(_)));
    assert!(invalid(
        &s.port
            .put(Item::new(Key::new("", "S"), json!({})), Condition::Any)
            .await
            .map(|_| ())
    ));
    assert!(invalid(&s.port.get(&Key::new("P", "")).await.map(|_| ())));
    assert!(invalid(
        &s.port.query(Query::new(Index::Pool, "POOL#q#p#0", 0)).await.map(|_| ())
    ));
    let garbage = Query::new(Index::Pool, "POOL#q#p#0", 5).after(Some(Cursor("not a cursor".into())));
    assert!(invalid(&s.port.query(garbage).await.map(|_| ())));
}

// ---- transactions against a model --------------------------------------------------------------

/// What a store holds, as the suite models it: version and `n` of each live key.
type Model = BTreeMap<String, (u64, i64)>;

#[derive(Debug, Clone)]
enum ModelWrite {
    Put(usize, i64, ModelCondition),
    Delete(usize, ModelCondition),
    Check(usize, ModelCondition),
}

#[derive(Debug, Clone, Copy)]
enum ModelCondition {
    Any,
    Absent,
    Exists,
    Version(u64),
}

const MODEL_KEYS: [&str; 4] = ["K0", "K1", "K2", "K3"];

impl ModelCondition {
    fn to_port(self) -> Condition {
        match self {
            ModelCondition::Any => Condition::Any,
            ModelCondition::Absent => Condition::Absent,
            ModelCondition::Exists => Condition::Exists,
            ModelCondition::Version(v) => Condition::Version(v),
        }
    }
}

impl ModelWrite {
    fn key(&self) -> usize {
        match self {
            ModelWrite::Put(k, ..) | ModelWrite::Delete(k, _) | ModelWrite::Check(k, _) => *k,
        }
    }

    fn condition(&self) -> ModelCondition {
        match self {
            ModelWrite::Put(_, _, c) | ModelWrite::Delete(_, c) | ModelWrite::Check(_, c) => *c,
        }
    }

    fn to_port(&self) -> Write {
        match self {
            ModelWrite::Put(k, n, c) => Write::put(item(MODEL_KEYS[*k], *n), c.to_port()),
            ModelWrite::Delete(k, c) => Write::delete(key(MODEL_KEYS[*k]), c.to_port()),
            ModelWrite::Check(k, c) => Write::check(key(MODEL_KEYS[*k]), c.to_port()),
        }
    }
}

/// Applies a transaction to the model: the index of the first failing condition, or the new model.
fn model_apply(model: &Model, writes: &[ModelWrite]) -> Result<Model, usize> {
    let mut next = model.clone();
    for (i, w) in writes.iter().enumerate() {
        let current = model.get(MODEL_KEYS[w.key()]).map(|(v, _)| *v);
        if !w.condition().to_port().holds(current) {
            return Err(i);
        }
        let name = MODEL_KEYS[w.key()].to_owned();
        match w {
            ModelWrite::Put(_, n, _) => {
                next.insert(name, (current.unwrap_or(0) + 1, *n));
            }
            ModelWrite::Delete(..) => {
                next.remove(&name);
            }
            ModelWrite::Check(..) => {}
        }
    }
    Ok(next)
}

fn model_condition() -> impl Strategy<Value = ModelCondition> {
    prop_oneof![
        Just(ModelCondition::Any),
        Just(ModelCondition::Absent),
        Just(ModelCondition::Exists),
        (1u64..4).prop_map(ModelCondition::Version),
    ]
}

fn model_write() -> impl Strategy<Value = ModelWrite> {
    let k = 0..MODEL_KEYS.len();
    prop_oneof![
        3 => (k.clone(), 0i64..100, model_condition()).prop_map(|(k, n, c)| ModelWrite::Put(k, n, c)),
        1 => (k.clone(), model_condition()).prop_map(|(k, c)| ModelWrite::Delete(k, c)),
        1 => (k, model_condition()).prop_map(|(k, c)| ModelWrite::Check(k, c)),
    ]
}

/// Transactions of 1 to 4 operations on distinct keys.
fn model_transaction() -> impl Strategy<Value = Vec<ModelWrite>> {
    proptest::collection::vec(model_write(), 1..5).prop_map(|mut writes| {
        let mut seen = std::collections::BTreeSet::new();
        writes.retain(|w| seen.insert(w.key()));
        writes
    })
}

/// Runs random transactions on a fresh store and on a model, and checks after each that both agree
/// on the outcome (including which operation failed) and on every key's version and value.
pub fn transactions_agree_with_a_model<S, T, F, Fut>(make: F)
where
    S: Store,
    T: Time,
    F: Fn() -> Fut,
    Fut: Future<Output = Subject<S, T>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = ok(runtime, "a runtime for the property test");
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = proptest::collection::vec(model_transaction(), 1..20);
    let result = runner.run(&strategy, |transactions| {
        runtime.block_on(async {
            let s = make().await;
            let mut model = Model::new();
            for (step, writes) in transactions.iter().enumerate() {
                let port_writes: Vec<Write> = writes.iter().map(ModelWrite::to_port).collect();
                let got = s.port.transact_write(port_writes, None).await;
                match (model_apply(&model, writes), got) {
                    (Ok(next), Ok(())) => model = next,
                    (Err(i), Err(PortError::ConditionFailed { operation, key: k })) => {
                        prop_assert_eq!(operation, Some(i), "step {}: {:?}", step, writes);
                        prop_assert_eq!(k, key(MODEL_KEYS[writes[i].key()]));
                    }
                    (want, got) => {
                        prop_assert!(false, "step {}: {:?}: model {:?}, store {:?}", step, writes, want, got)
                    }
                }
                for name in MODEL_KEYS {
                    let stored = ok(s.port.get(&key(name)).await, "get");
                    let stored = stored.map(|s| (s.version, s.item.body["n"].as_i64().unwrap_or(-1)));
                    prop_assert_eq!(stored, model.get(name).copied(), "step {}: key {}", step, name);
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("the store disagrees with the model: {e}");
    }
}
