//! Listing through the gateway: ListObjectsV2 and ListObjects (V1) over more keys than one
//! page holds, with prefix, delimiter, pagination, start-after/marker, max-keys=0 and
//! `encoding-type=url`. Every paginated listing is compared with the expected sorted set.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;
use futures::StreamExt;
use percent_encoding::percent_decode_str;

use crate::harness::*;

const BUCKET: &str = "many";

/// 1100 keys in a small tree:
/// `a/0000..0599` (600), `b/c/0000..0299` (300), `b/d000..149` (150), `top00..49` (50).
fn tree_keys() -> Vec<String> {
    let mut keys = Vec::with_capacity(1100);
    keys.extend((0..600).map(|i| format!("a/{i:04}")));
    keys.extend((0..300).map(|i| format!("b/c/{i:04}")));
    keys.extend((0..150).map(|i| format!("b/d{i:03}")));
    keys.extend((0..50).map(|i| format!("top{i:02}")));
    keys.sort();
    keys
}

/// A cluster whose bucket `many` holds `tree_keys()`, put 32 at a time.
async fn cluster_with_tree() -> (Cluster, Vec<String>) {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    let keys = tree_keys();
    futures::stream::iter(keys.clone())
        .map(|key| {
            let s3 = s3.clone();
            async move { put_bytes(&s3, BUCKET, &key, key.as_bytes()).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    (cluster, keys)
}

fn under<'a>(keys: &'a [String], prefix: &str) -> Vec<&'a str> {
    keys.iter()
        .map(String::as_str)
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Options of one V1 or V2 listing.
#[derive(Default, Clone)]
struct Query<'a> {
    prefix: Option<&'a str>,
    delimiter: Option<&'a str>,
    max_keys: Option<i32>,
    start_after: Option<&'a str>,
}

/// What a complete (all pages) listing returned.
#[derive(Debug, Default)]
struct Listed {
    keys: Vec<String>,
    prefixes: Vec<String>,
    pages: usize,
}

/// Every page of a ListObjectsV2 listing, following continuation tokens.
async fn list_v2_all(s3: &Client, q: &Query<'_>) -> Listed {
    let mut listed = Listed::default();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .set_prefix(q.prefix.map(str::to_owned))
            .set_delimiter(q.delimiter.map(str::to_owned))
            .set_max_keys(q.max_keys)
            .set_start_after(q.start_after.map(str::to_owned))
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectsV2 page {}: {e:?}", listed.pages + 1));
        listed.pages += 1;
        let page_len = out.contents().len() + out.common_prefixes().len();
        if let Some(max) = q.max_keys {
            assert!(
                page_len <= max as usize,
                "page of {page_len} > max-keys {max}"
            );
        }
        assert_eq!(out.key_count(), Some(page_len as i32), "KeyCount");
        listed
            .keys
            .extend(out.contents().iter().map(|o| o.key().unwrap().to_string()));
        listed.prefixes.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string()),
        );
        if out.is_truncated() != Some(true) {
            assert!(out.next_continuation_token().is_none());
            return listed;
        }
        assert!(page_len > 0, "a truncated page must not be empty");
        token = Some(
            out.next_continuation_token()
                .expect("truncated page without NextContinuationToken")
                .to_string(),
        );
        assert!(listed.pages < 10_000, "pagination does not end");
    }
}

/// Every page of a ListObjects (V1) listing, following NextMarker (or the last key when
/// no delimiter was given, as S3 clients do).
async fn list_v1_all(s3: &Client, q: &Query<'_>) -> Listed {
    let mut listed = Listed::default();
    let mut marker: Option<String> = q.start_after.map(str::to_owned);
    loop {
        let out = s3
            .list_objects()
            .bucket(BUCKET)
            .set_prefix(q.prefix.map(str::to_owned))
            .set_delimiter(q.delimiter.map(str::to_owned))
            .set_max_keys(q.max_keys)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjects page {}: {e:?}", listed.pages + 1));
        listed.pages += 1;
        let keys: Vec<String> = out
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect();
        let prefixes: Vec<String> = out
            .common_prefixes()
            .iter()
            .map(|p| p.prefix().unwrap().to_string())
            .collect();
        let page_len = keys.len() + prefixes.len();
        if let Some(max) = q.max_keys {
            assert!(
                page_len <= max as usize,
                "page of {page_len} > max-keys {max}"
            );
        }
        let last = keys.iter().chain(&prefixes).max().cloned();
        listed.keys.extend(keys);
        listed.prefixes.extend(prefixes);
        if out.is_truncated() != Some(true) {
            return listed;
        }
        assert!(page_len > 0, "a truncated page must not be empty");
        let next = match out.next_marker() {
            Some(m) => m.to_string(),
            None => {
                assert!(
                    q.delimiter.is_none(),
                    "S3 returns NextMarker on truncated pages when a delimiter is given"
                );
                last.unwrap()
            }
        };
        marker = Some(next);
        assert!(listed.pages < 10_000, "pagination does not end");
    }
}

#[tokio::test]
async fn list_objects_v2_paginates_filters_and_groups_1100_keys() {
    let (cluster, keys) = cluster_with_tree().await;
    let s3 = cluster.client();

    // Default page size: at most 1000, so at least two pages. (S3 may return short
    // pages; the checks below only hold the gateway to the protocol.)
    let all = list_v2_all(&s3, &Query::default()).await;
    assert_eq!(all.keys, keys);
    assert!(all.pages >= 2, "{} pages", all.pages);
    assert!(all.prefixes.is_empty());
    let first = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert!(first.contents().len() <= 1000);
    assert_eq!(first.is_truncated(), Some(true));
    let sizes_ok = first
        .contents()
        .iter()
        .all(|o| o.size() == o.key().map(|k| k.len() as i64));
    assert!(sizes_ok, "Size of each entry is its body length");
    let etag_ok = first
        .contents()
        .iter()
        .all(|o| o.e_tag() == Some(etag_of(o.key().unwrap().as_bytes()).as_str()));
    assert!(etag_ok, "ETag of each entry is its quoted MD5");

    // Small pages.
    let paged = list_v2_all(
        &s3,
        &Query {
            max_keys: Some(77),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(paged.keys, keys);
    assert!(paged.pages >= 1100_usize.div_ceil(77));

    // Prefix.
    let b = list_v2_all(
        &s3,
        &Query {
            prefix: Some("b/"),
            max_keys: Some(100),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(b.keys, under(&keys, "b/"));

    // Delimiter at the root: folders become common prefixes.
    let root = list_v2_all(
        &s3,
        &Query {
            delimiter: Some("/"),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(root.keys, under(&keys, "top"));
    assert_eq!(root.prefixes, ["a/", "b/"]);

    // Delimiter under a prefix, in pages of 10 that mix keys and prefixes.
    let b_dir = list_v2_all(
        &s3,
        &Query {
            prefix: Some("b/"),
            delimiter: Some("/"),
            max_keys: Some(10),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(b_dir.keys, under(&keys, "b/d"));
    assert_eq!(b_dir.prefixes, ["b/c/"]);
    assert!(b_dir.pages >= 151_usize.div_ceil(10));

    // Start-after, alone and with a prefix.
    let after = list_v2_all(
        &s3,
        &Query {
            start_after: Some("b/c/0150"),
            max_keys: Some(300),
            ..Query::default()
        },
    )
    .await;
    let want: Vec<&String> = keys.iter().filter(|k| k.as_str() > "b/c/0150").collect();
    assert_eq!(after.keys.iter().collect::<Vec<_>>(), want);
    let after_in_a = list_v2_all(
        &s3,
        &Query {
            prefix: Some("a/"),
            start_after: Some("a/0590"),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(
        after_in_a.keys,
        (591..600).map(|i| format!("a/{i:04}")).collect::<Vec<_>>()
    );

    // A prefix that matches nothing.
    let none = list_v2_all(
        &s3,
        &Query {
            prefix: Some("zzz"),
            ..Query::default()
        },
    )
    .await;
    assert!(none.keys.is_empty() && none.prefixes.is_empty());
}

#[tokio::test]
async fn list_objects_v2_with_max_keys_zero_returns_nothing() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    put_bytes(&s3, BUCKET, "one", b"1").await;
    let out = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(out.contents().is_empty(), "{:?}", out.contents());
    assert!(out.common_prefixes().is_empty());
    assert_eq!(out.key_count(), Some(0));
    assert_eq!(out.max_keys(), Some(0));
    let out = s3
        .list_objects()
        .bucket(BUCKET)
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(out.contents().is_empty(), "{:?}", out.contents());
}

#[tokio::test]
async fn list_objects_v1_paginates_with_markers_over_1100_keys() {
    let (cluster, keys) = cluster_with_tree().await;
    let s3 = cluster.client_when_required();

    let all = list_v1_all(&s3, &Query::default()).await;
    assert_eq!(all.keys, keys);
    assert!(all.pages >= 2);

    let paged = list_v1_all(
        &s3,
        &Query {
            max_keys: Some(101),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(paged.keys, keys);
    assert!(paged.pages >= 1100_usize.div_ceil(101));

    let root = list_v1_all(
        &s3,
        &Query {
            delimiter: Some("/"),
            max_keys: Some(7),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(root.keys, under(&keys, "top"));
    assert_eq!(root.prefixes, ["a/", "b/"]);

    let b_dir = list_v1_all(
        &s3,
        &Query {
            prefix: Some("b/"),
            delimiter: Some("/"),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(b_dir.keys, under(&keys, "b/d"));
    assert_eq!(b_dir.prefixes, ["b/c/"]);

    let after = list_v1_all(
        &s3,
        &Query {
            prefix: Some("b/c/"),
            start_after: Some("b/c/0290"),
            ..Query::default()
        },
    )
    .await;
    assert_eq!(
        after.keys,
        (291..300)
            .map(|i| format!("b/c/{i:04}"))
            .collect::<Vec<_>>()
    );
}

/// Undoes `encoding-type=url` as botocore does (`unquote_plus`).
fn url_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .unwrap_or_else(|e| panic!("{s:?} is not valid percent-encoded UTF-8: {e}"))
        .into_owned()
}

#[tokio::test]
async fn listing_with_encoding_type_url_round_trips_awkward_keys() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    let mut keys: Vec<String> = [
        "plain",
        "with space",
        "per%cent",
        "plus+sign",
        "caf\u{e9}",
        "amp&lt<gt>",
        "dir one/inner+x",
        "dir%two/inner y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    keys.sort();
    for key in &keys {
        put_bytes(&s3, BUCKET, key, key.as_bytes()).await;
    }

    // Without encoding-type the exact keys come back (XML escaping is the SDK's job).
    let plain = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(plain.encoding_type(), None);
    let got: Vec<&str> = plain.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, keys);

    // With encoding-type=url the SDK does not decode: the gateway either echoes
    // EncodingType and encodes every key (then decoding gives the keys back), or ignores
    // the parameter and sends the exact keys. Anything else corrupts client listings.
    let out = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let encoded = out.encoding_type() == Some(&EncodingType::Url);
    let got: Vec<String> = out
        .contents()
        .iter()
        .map(|o| o.key().unwrap())
        .map(|k| {
            if encoded {
                url_decode(k)
            } else {
                k.to_string()
            }
        })
        .collect();
    assert_eq!(got, keys, "encoded = {encoded}");
    if encoded {
        let raw: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        assert!(
            raw.iter().all(|k| !k.contains(' ') && !k.contains('<')),
            "keys are not URL-encoded: {raw:?}"
        );
        assert!(raw.contains(&"plus%2Bsign"), "{raw:?}");
        assert!(raw.contains(&"per%25cent"), "{raw:?}");
    }

    // Common prefixes are encoded the same way.
    for v1 in [false, true] {
        let (encoded, prefixes, keys_at_root) = if v1 {
            let out = s3
                .list_objects()
                .bucket(BUCKET)
                .delimiter("/")
                .encoding_type(EncodingType::Url)
                .send()
                .await
                .unwrap();
            (
                out.encoding_type() == Some(&EncodingType::Url),
                out.common_prefixes()
                    .iter()
                    .map(|p| p.prefix().unwrap().to_string())
                    .collect::<Vec<_>>(),
                out.contents().len(),
            )
        } else {
            let out = s3
                .list_objects_v2()
                .bucket(BUCKET)
                .delimiter("/")
                .encoding_type(EncodingType::Url)
                .send()
                .await
                .unwrap();
            (
                out.encoding_type() == Some(&EncodingType::Url),
                out.common_prefixes()
                    .iter()
                    .map(|p| p.prefix().unwrap().to_string())
                    .collect::<Vec<_>>(),
                out.contents().len(),
            )
        };
        let decoded: Vec<String> = prefixes
            .iter()
            .map(|p| if encoded { url_decode(p) } else { p.clone() })
            .collect();
        assert_eq!(decoded, ["dir one/", "dir%two/"], "v1 = {v1}");
        assert_eq!(keys_at_root, keys.len() - 2, "v1 = {v1}");
    }
}
