//! Pure parts of the HTTP layer: routing, Range parsing and resolution, queries, the
//! blob references of records. The served API itself is exercised end to end
//! in `crate::tests`.

use std::collections::BTreeMap;

use super::params::ListQuery;
use super::*;
use crate::proto::{
    Data, MAX_LIST_LIMIT, ObjectMeta, ObjectRecord, PartRef, Stamp, Version, VersionState,
};

fn range(v: &str) -> Result<ByteRange, Error> {
    ByteRange::parse(&HeaderValue::from_str(v).expect("header value"))
}

#[test]
fn parses_the_three_range_forms() {
    assert_eq!(range("bytes=0-9").ok(), Some(ByteRange::FromTo(0, 9)));
    assert_eq!(range("bytes=5-").ok(), Some(ByteRange::From(5)));
    assert_eq!(range("bytes=-3").ok(), Some(ByteRange::Suffix(3)));
    for bad in [
        "bytes=",
        "bytes=-",
        "bytes=9-1",
        "items=0-1",
        "bytes=0-1,3-4",
        "bytes=a-b",
    ] {
        assert!(matches!(range(bad), Err(Error::BadRequest(_))), "{bad}");
    }
}

#[test]
fn resolves_ranges_like_http_does() {
    let ok = |r: ByteRange, size| r.resolve(size).ok();
    assert_eq!(ok(ByteRange::FromTo(0, 9), 100), Some((0, 10)));
    assert_eq!(ok(ByteRange::FromTo(90, 200), 100), Some((90, 100)));
    assert_eq!(ok(ByteRange::FromTo(0, u64::MAX), 100), Some((0, 100)));
    assert_eq!(ok(ByteRange::From(99), 100), Some((99, 100)));
    assert_eq!(ok(ByteRange::Suffix(10), 100), Some((90, 100)));
    assert_eq!(ok(ByteRange::Suffix(500), 100), Some((0, 100)));
    for (r, size) in [
        (ByteRange::FromTo(100, 200), 100),
        (ByteRange::From(100), 100),
        (ByteRange::Suffix(0), 100),
        (ByteRange::Suffix(5), 0),
        (ByteRange::From(0), 0),
    ] {
        assert!(
            matches!(r.resolve(size), Err(Error::RangeNotSatisfiable { .. })),
            "{r:?} of {size}"
        );
    }
}

#[test]
fn list_query_decodes_values_and_defaults_the_limit() {
    let q = ListQuery::parse(Some("prefix=a%2Fb%20c&after=a%2F1&limit=7&future=x")).expect("parse");
    assert_eq!(
        q,
        ListQuery {
            prefix: "a/b c".into(),
            after: "a/1".into(),
            limit: 7,
            check_blobs: false,
            summary: false,
            current_only: false,
            no_bodies: false,
        }
    );
    for (query, check) in [
        ("check_blobs=1", true),
        ("check_blobs", true),
        ("check_blobs=true", true),
        ("check_blobs=0", false),
    ] {
        let q = ListQuery::parse(Some(query)).expect("parse");
        assert_eq!(q.check_blobs, check, "{query}");
    }
    assert!(ListQuery::parse(Some("check_blobs=maybe")).is_err());
    assert!(ListQuery::parse(Some("summary=1")).expect("parse").summary);
    assert!(ListQuery::parse(Some("summary=x")).is_err());
    let empty = ListQuery::parse(None).expect("parse");
    assert_eq!(empty.limit, MAX_LIST_LIMIT);
    assert!(empty.prefix.is_empty() && empty.after.is_empty());
    assert!(ListQuery::parse(Some("limit=-1")).is_err());
    assert!(ListQuery::parse(Some("prefix=%FF")).is_err());
}

#[test]
fn hints_limit_defaults_to_and_is_capped_at_the_list_limit() {
    assert_eq!(params::hints_limit(None).expect("parse"), MAX_LIST_LIMIT);
    assert_eq!(params::hints_limit(Some("limit=5")).expect("parse"), 5);
    assert_eq!(
        params::hints_limit(Some("limit=99999")).expect("parse"),
        MAX_LIST_LIMIT
    );
    assert!(params::hints_limit(Some("limit=x")).is_err());
}

#[test]
fn routes_by_method_and_segments_with_fixed_labels() {
    let route = |m: Method, p: &'static str| Route::parse(&m, p);
    assert_eq!(route(Method::GET, "/health"), Route::Health);
    assert_eq!(route(Method::GET, "/metrics"), Route::Metrics);
    assert_eq!(route(Method::POST, "/hints"), Route::RaiseHints);
    assert_eq!(route(Method::GET, "/hints"), Route::GetHints);
    assert_eq!(route(Method::POST, "/hints/delete"), Route::ClearHints);
    assert_eq!(route(Method::POST, "/lease/repair"), Route::Lease("repair"));
    assert_eq!(
        route(Method::GET, "/records/b/a%2Fk"),
        Route::GetRecord("b", "a%2Fk")
    );
    assert_eq!(route(Method::GET, "/hints/delete"), Route::WrongMethod);
    assert_eq!(route(Method::DELETE, "/lease/x"), Route::WrongMethod);
    assert_eq!(route(Method::POST, "/metrics"), Route::WrongMethod);
    assert_eq!(route(Method::GET, "/hints/other"), Route::Unknown);
    assert_eq!(route(Method::GET, "/blobs/a/b"), Route::Unknown);
    // Only health and metrics are open; labels never come from the path.
    assert!(route(Method::GET, "/metrics").is_open());
    assert!(!route(Method::POST, "/metrics").is_open());
    assert!(!route(Method::GET, "/hints").is_open());
    assert_eq!(route(Method::PUT, "/blobs/anything").label(), "put_blob");
    assert_eq!(route(Method::GET, "/x/y/z").label(), "other");
}

#[test]
fn layout_routes_parse_and_only_record_routes_are_fenced() {
    let route = |m: Method, p: &'static str| Route::parse(&m, p);
    let cases = [
        (
            Method::GET,
            "/layout",
            Route::LayoutGet,
            "layout_get",
            false,
        ),
        (
            Method::POST,
            "/layout/prepare",
            Route::LayoutPrepare,
            "layout_prepare",
            false,
        ),
        (
            Method::POST,
            "/layout/accept",
            Route::LayoutAccept,
            "layout_accept",
            false,
        ),
        (
            Method::POST,
            "/layout/commit",
            Route::LayoutCommit,
            "layout_commit",
            false,
        ),
        (
            Method::POST,
            "/layout/release/b/a%2Fk",
            Route::LayoutRelease("b", "a%2Fk"),
            "layout_release",
            true,
        ),
        (
            Method::GET,
            "/blobs/x",
            Route::GetBlob("x"),
            "get_blob",
            false,
        ),
        (
            Method::PUT,
            "/blobs/x",
            Route::PutBlob("x"),
            "put_blob",
            false,
        ),
        (Method::POST, "/lease/x", Route::Lease("x"), "lease", false),
        (Method::GET, "/info", Route::Info, "info", false),
        (
            Method::GET,
            "/records/b/k",
            Route::GetRecord("b", "k"),
            "get_record",
            true,
        ),
        (
            Method::GET,
            "/buckets",
            Route::ListBuckets,
            "list_buckets",
            true,
        ),
        (Method::POST, "/gc/drop", Route::GcDrop, "gc_drop", true),
    ];
    for (method, path, expected, label, fenced) in cases {
        let r = route(method, path);
        assert_eq!(r, expected, "{path}");
        assert_eq!(r.label(), label, "{path}");
        assert_eq!(r.is_fenced(), fenced, "{path}");
    }
    assert_eq!(route(Method::POST, "/layout"), Route::WrongMethod);
    assert_eq!(route(Method::GET, "/layout/commit"), Route::WrongMethod);
    assert_eq!(
        route(Method::GET, "/layout/release/b/k"),
        Route::WrongMethod
    );
    assert_eq!(route(Method::POST, "/layout/release/b"), Route::Unknown);
    assert!(!route(Method::GET, "/layout").is_open());
}

fn object(data: Data) -> VersionState {
    VersionState::Object(ObjectMeta {
        size: 1,
        md5: "m".into(),
        etag: "m".into(),
        data,
        headers: BTreeMap::new(),
        user_metadata: BTreeMap::new(),
        part_number: None,
        checksums: BTreeMap::new(),
        checksum_type: None,
        checksum_algorithm: None,
    })
}

#[test]
fn referenced_blobs_skip_purged_markers_and_inline_bodies() {
    let version = |ts: u64, state: VersionState| Version {
        stamp: Stamp {
            ts,
            id: format!("v{ts}"),
        },
        null: false,
        state,
        tags: None,
        acl: None,
        follows: None,
    };
    let part = |n: u32, blob: &str| PartRef {
        number: n,
        blob: blob.into(),
        size: 1,
        md5: "m".into(),
        checksums: Default::default(),
    };
    let record = ObjectRecord {
        versions: vec![
            version(1, object(Data::Blob { id: "a".into() })),
            version(2, VersionState::Purged),
            version(3, VersionState::DeleteMarker),
            version(4, object(Data::Inline { bytes: vec![1] })),
            version(
                5,
                object(Data::Parts {
                    parts: vec![part(1, "b"), part(2, "a"), part(3, "c")],
                }),
            ),
        ],
    };
    assert_eq!(records::referenced_blobs(&record), ["a", "b", "c"]);
}
