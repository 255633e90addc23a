//! The listing of the keys a node holds agreement state for (`GET /paxos`): every such
//! key once, in order, page by page, and nothing else.

use super::*;
use crate::proto::paxos::AgreedKey;

#[tokio::test]
async fn agreed_keys_are_listed_page_by_page_and_released_keys_leave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    store
        .merge_object("b", "plain", record(1))
        .await
        .expect("merge");
    // In byte order of `bucket ++ 0x00 ++ key`.
    let agreed = [("a", "z"), ("b", "k\0upload"), ("b", "k/1"), ("c", "k")];
    for (b, k) in agreed {
        store
            .paxos_prepare(b, k, ballot(10), Select::All)
            .await
            .expect("prepare");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.agreed_keys(after.clone(), 3).await.expect("page");
        assert!(page.keys.len() <= 3);
        after = page.keys.last().map(AgreedKey::cursor);
        seen.extend(page.keys.into_iter().map(|k| (k.bucket, k.key)));
        if !page.truncated {
            break;
        }
    }
    let want: Vec<(String, String)> = agreed
        .iter()
        .map(|(b, k)| (b.to_string(), k.to_string()))
        .collect();
    assert_eq!(seen, want, "a key written without agreement is not listed");

    store.release_object("b", "k/1").await.expect("release");
    let page = store.agreed_keys(None, 1000).await.expect("page");
    assert_eq!(page.keys.len(), 3, "a released key's state is gone");
    assert!(!page.truncated);
}
