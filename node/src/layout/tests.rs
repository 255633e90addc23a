//! The acceptor's rules, the release rule and the fence gate, without HTTP; the routes
//! are exercised end to end in `crate::tests::layout`.

use std::time::Duration;

use super::*;
use crate::proto::layout::LayoutNode;

fn ballot(ts: u64) -> Ballot {
    Ballot {
        ts,
        id: format!("p{ts}"),
    }
}

fn members(n: usize) -> Vec<LayoutNode> {
    (0..n)
        .map(|i| LayoutNode {
            id: format!("n{i}"),
            url: format!("http://10.0.0.{i}:3900"),
            zone: String::new(),
            capacity: 0,
        })
        .collect()
}

fn layout(version: u64, revision: u64) -> Layout {
    Layout {
        version,
        revision,
        ..Layout::first(members(3), 2)
    }
}

#[test]
fn the_highest_ballot_wins_and_a_resent_one_is_promised_again() {
    let mut a = Acceptor::default();
    assert!(a.prepare(&ballot(5)).promised);
    assert!(a.prepare(&ballot(5)).promised);
    let refused = a.prepare(&ballot(4));
    assert!(!refused.promised);
    assert_eq!(refused.highest, ballot(5));
    assert!(!a.accept(&ballot(4), &layout(1, 1)).accepted);
    assert!(a.accepted.is_none());
    // An accept at a higher ballot than promised is taken and raises the promise.
    let reply = a.accept(&ballot(6), &layout(1, 1));
    assert!(reply.accepted);
    assert_eq!(reply.highest, ballot(6));
    assert!(!a.prepare(&ballot(5)).promised);
    let promise = a.prepare(&ballot(7));
    assert!(promise.promised);
    assert_eq!(promise.accepted, Some((ballot(6), layout(1, 1))));
    assert_eq!(promise.committed, None);
}

#[test]
fn commits_only_move_forward_by_revision() {
    let mut a = Acceptor::default();
    a.commit(layout(1, 2)).unwrap();
    assert_eq!(a.version(), 1);
    // Older or equal revisions are ignored, whatever they say.
    a.commit(layout(5, 1)).unwrap();
    a.commit(layout(5, 2)).unwrap();
    assert_eq!(a.committed, Some(layout(1, 2)));
    a.commit(layout(2, 3)).unwrap();
    assert_eq!(a.version(), 2);
    // A newer revision may not lower the version.
    assert!(matches!(a.commit(layout(1, 4)), Err(Error::BadRequest(_))));
    assert_eq!(a.committed, Some(layout(2, 3)));
}

#[test]
fn a_copy_is_released_only_by_a_non_owner_outside_a_migration() {
    let l = layout(3, 3);
    let owner_ids = |b: &str, k: &str| -> Vec<String> {
        owners(&l.nodes, l.replicas, b, k)
            .into_iter()
            .map(|i| l.nodes[i].id.clone())
            .collect()
    };
    let owning = owner_ids("b", "k");
    let other = l
        .nodes
        .iter()
        .find(|n| !owning.contains(&n.id))
        .map(|n| n.id.clone())
        .expect("a non-owner");
    assert!(release_refusal(None, &other, "b", "k").is_some());
    assert!(release_refusal(Some(&l), &owning[0], "b", "k").is_some());
    assert_eq!(release_refusal(Some(&l), &other, "b", "k"), None);
    // An upload's record is placed by its object key.
    assert!(release_refusal(Some(&l), &owning[0], "b/uploads", "k\0u1").is_some());
    assert_eq!(
        release_refusal(Some(&l), &other, "b/uploads", "k\0u1"),
        None
    );
    let migrating = Layout {
        previous: Some(members(2)),
        ..l.clone()
    };
    assert!(release_refusal(Some(&migrating), &other, "b", "k").is_some());
}

#[tokio::test]
async fn a_commit_raising_the_version_waits_for_fenced_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = LayoutStore::open(dir.path()).unwrap();
    store.commit(layout(1, 1)).await.unwrap();
    let in_flight = store.enter(Some(1)).await.unwrap();

    // Same version, newer revision (a staged change): no wait.
    tokio::time::timeout(Duration::from_secs(5), store.commit(layout(1, 2)))
        .await
        .expect("a commit keeping the version waited")
        .unwrap();
    let raising = tokio::spawn({
        let store = store.clone();
        async move { store.commit(layout(2, 3)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!raising.is_finished(), "the commit did not wait");
    // Nothing of it shows yet.
    assert_eq!(store.version(), 1);
    drop(in_flight);
    tokio::time::timeout(Duration::from_secs(5), raising)
        .await
        .expect("the commit never finished")
        .unwrap()
        .unwrap();
    assert_eq!(store.version(), 2);
    assert!(matches!(
        store.enter(Some(1)).await,
        Err(Error::StaleLayout {
            sent: 1,
            committed: 2
        })
    ));
    assert!(store.enter(Some(2)).await.is_ok());
    assert!(store.enter(Some(3)).await.is_ok());
    assert!(store.enter(None).await.is_ok());
}

#[tokio::test]
async fn the_state_is_kept_on_disk_and_a_corrupt_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = LayoutStore::open(dir.path()).unwrap();
    assert!(store.prepare(ballot(3)).await.unwrap().promised);
    assert!(
        store
            .accept(ballot(3), layout(1, 1))
            .await
            .unwrap()
            .accepted
    );
    store.commit(layout(1, 1)).await.unwrap();
    drop(store);
    let again = LayoutStore::open(dir.path()).unwrap();
    assert_eq!(again.version(), 1);
    assert_eq!(again.committed(), Some(layout(1, 1)));
    assert!(!again.prepare(ballot(2)).await.unwrap().promised);

    std::fs::write(dir.path().join(FILE), b"{ not json").unwrap();
    assert!(matches!(
        LayoutStore::open(dir.path()),
        Err(Error::Corrupt(_))
    ));
}
