//! Pure parts of the HTTP layer: Range parsing and resolution, list queries, the secret
//! check. The served API itself is exercised end to end in `crate::tests`.

use super::*;

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
            limit: 7
        }
    );
    let empty = ListQuery::parse(None).expect("parse");
    assert_eq!(empty.limit, MAX_LIST_LIMIT);
    assert!(empty.prefix.is_empty() && empty.after.is_empty());
    assert!(ListQuery::parse(Some("limit=-1")).is_err());
    assert!(ListQuery::parse(Some("prefix=%FF")).is_err());
}

#[test]
fn secret_must_match_exactly() {
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            proto::SECRET_HEADER,
            HeaderValue::from_str(v).expect("value"),
        );
        h
    };
    assert!(authorize(&with("s3cret"), b"s3cret").is_ok());
    for wrong in ["s3cre", "s3cret!", "S3cret", ""] {
        assert!(matches!(
            authorize(&with(wrong), b"s3cret"),
            Err(Error::Unauthorized)
        ));
    }
    assert!(matches!(
        authorize(&HeaderMap::new(), b"s3cret"),
        Err(Error::Unauthorized)
    ));
}
