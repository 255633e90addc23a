//! Record reads without some inline bodies ([`Bodies`]): what is left out, how the query
//! travels, and that a body-less copy neither hides nor replaces the bytes when merged.

use std::collections::BTreeMap;

use crate::proto::{Bodies, Data, Lww, ObjectMeta, ObjectRecord, Stamp, Version, VersionState};

fn inline(ts: u64, body: &[u8]) -> Version {
    Version {
        stamp: Stamp {
            ts,
            id: format!("v{ts}"),
        },
        null: false,
        state: VersionState::Object(ObjectMeta {
            size: body.len() as u64,
            md5: format!("md5-{ts}"),
            etag: format!("md5-{ts}"),
            data: Data::Inline {
                bytes: body.to_vec(),
            },
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            part_number: None,
            checksums: BTreeMap::new(),
            checksum_type: None,
            checksum_algorithm: None,
        }),
        tags: None,
        acl: None,
        follows: None,
    }
}

fn blob(ts: u64) -> Version {
    let mut v = inline(ts, b"");
    if let VersionState::Object(m) = &mut v.state {
        m.data = Data::Blob {
            id: format!("{ts:032x}"),
        };
    }
    v
}

fn purge(v: &Version) -> Version {
    Version {
        state: VersionState::Purged,
        ..v.clone()
    }
}

fn data(record: &ObjectRecord) -> Vec<Data> {
    record
        .versions
        .iter()
        .map(|v| match &v.state {
            VersionState::Object(m) => m.data.clone(),
            _ => Data::InlineOmitted,
        })
        .collect()
}

fn body(b: &[u8]) -> Data {
    Data::Inline { bytes: b.to_vec() }
}

fn record() -> ObjectRecord {
    ObjectRecord {
        versions: vec![inline(1, b"one"), blob(2), inline(3, b"three")],
    }
}

#[test]
fn omit_bodies_keeps_only_what_was_asked_for() {
    let blob2 = Data::Blob {
        id: format!("{:032x}", 2),
    };
    let omitted = |bodies: Bodies| {
        let mut r = record();
        r.omit_bodies(&bodies);
        data(&r)
    };
    assert_eq!(omitted(Bodies::All), data(&record()));
    assert_eq!(
        omitted(Bodies::None),
        [Data::InlineOmitted, blob2.clone(), Data::InlineOmitted]
    );
    assert_eq!(
        omitted(Bodies::Of(None)),
        [Data::InlineOmitted, blob2.clone(), body(b"three")]
    );
    assert_eq!(
        omitted(Bodies::Of(Some("v1".into()))),
        [body(b"one"), blob2.clone(), Data::InlineOmitted]
    );
    // A version id the record does not have: nothing to serve, nothing kept.
    assert_eq!(
        omitted(Bodies::Of(Some("v9".into()))),
        [Data::InlineOmitted, blob2, Data::InlineOmitted]
    );
}

#[test]
fn the_current_body_skips_purged_versions() {
    let mut r = ObjectRecord {
        versions: vec![inline(1, b"one"), purge(&inline(2, b"two"))],
    };
    r.omit_bodies(&Bodies::Of(None));
    assert_eq!(data(&r), [body(b"one"), Data::InlineOmitted]);
    assert!(!r.has_omitted_body());
    r.omit_bodies(&Bodies::None);
    assert!(r.has_omitted_body());
}

#[test]
fn bodies_travel_as_a_query() {
    for bodies in [
        Bodies::All,
        Bodies::None,
        Bodies::Of(None),
        Bodies::Of(Some("null".into())),
        Bodies::Of(Some("a b&c=d/é".into())),
    ] {
        let query = bodies.to_query();
        assert_eq!(
            Bodies::from_query(query.as_deref()),
            Some(bodies.clone()),
            "{query:?}"
        );
    }
    assert_eq!(Bodies::from_query(Some("")), Some(Bodies::All));
    for bad in [
        "bodies=some",
        "bodies=version",
        "bodies=none&version=x",
        "version=x",
        "bodies=version&version=%FF",
    ] {
        assert_eq!(Bodies::from_query(Some(bad)), None, "{bad}");
    }
}

#[test]
fn a_merge_takes_the_body_from_whichever_copy_has_it() {
    let full = ObjectRecord::single(inline(1, b"one"));
    let mut without = full.clone();
    without.omit_bodies(&Bodies::None);
    for (a, b) in [(&full, &without), (&without, &full)] {
        let mut m = a.clone();
        m.merge(b);
        assert_eq!(m, full);
    }
    let mut m = without.clone();
    m.merge(&without);
    assert!(m.has_omitted_body());
}

#[test]
fn same_as_ignores_only_an_omitted_body() {
    let full = inline(1, b"one");
    let mut without = ObjectRecord::single(full.clone());
    without.omit_bodies(&Bodies::None);
    let without = &without.versions[0];
    assert!(full.same_as(without) && without.same_as(&full));
    assert!(full.same_as(&full));
    // Two different bodies are different versions, whatever the meta says.
    assert!(!full.same_as(&inline(1, b"uno")));
    let mut retagged = without.clone();
    retagged.tags = Some(Lww {
        stamp: full.stamp.clone(),
        value: BTreeMap::from([("k".into(), "v".into())]),
    });
    assert!(!full.same_as(&retagged));
    let mut other_type = without.clone();
    if let VersionState::Object(m) = &mut other_type.state {
        m.headers.insert("content-type".into(), "x/y".into());
    }
    assert!(!full.same_as(&other_type));
    assert!(!full.same_as(&purge(&full)));
}
