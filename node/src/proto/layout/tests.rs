use std::collections::HashMap;

use super::*;

fn node(i: usize, zone: &str, capacity: u64) -> LayoutNode {
    LayoutNode {
        id: format!("id{i}"),
        url: format!("http://10.0.0.{i}:3900"),
        zone: zone.to_owned(),
        capacity,
    }
}

fn plain(n: usize) -> Vec<LayoutNode> {
    (0..n).map(|i| node(i, "", 0)).collect()
}

fn load(nodes: &[LayoutNode], keys: usize) -> HashMap<usize, usize> {
    let mut load = HashMap::new();
    for k in 0..keys {
        for i in owners(nodes, 3, "b", &format!("key-{k}")) {
            *load.entry(i).or_default() += 1;
        }
    }
    load
}

#[test]
fn owners_are_distinct_deterministic_and_balanced() {
    let nodes = plain(5);
    for k in 0..2000 {
        let key = format!("k{k}");
        let o = owners(&nodes, 3, "b", &key);
        assert_eq!(o, owners(&nodes, 3, "b", &key));
        let mut d = o.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);
    }
    // 15000 placements over 5 nodes: 3000 each on average.
    for (i, n) in load(&nodes, 5000) {
        assert!((2700..3300).contains(&n), "node {i} holds {n}");
    }
}

#[test]
fn the_url_is_not_part_of_placement() {
    let a = plain(5);
    let mut b = a.clone();
    b[2].url = "http://elsewhere:1".into();
    for k in 0..500 {
        let key = format!("k{k}");
        assert_eq!(owners(&a, 3, "b", &key), owners(&b, 3, "b", &key));
    }
}

#[test]
fn adding_a_node_moves_only_keys_it_takes() {
    let before = plain(5);
    let after = plain(6);
    let mut moved = 0;
    for k in 0..3000 {
        let key = format!("k{k}");
        let mut a = owners(&before, 3, "b", &key);
        let mut b = owners(&after, 3, "b", &key);
        if a != b {
            moved += 1;
            assert!(b.contains(&5), "a key moved between old nodes");
            a.sort();
            b.retain(|&i| i != 5);
            b.sort();
            assert!(b.iter().all(|i| a.contains(i)));
        }
    }
    // About RF/N = 3/6 of the keys gain the new node.
    assert!((1300..1700).contains(&moved), "moved {moved}");
}

#[test]
fn weight_follows_capacity() {
    let mut nodes = plain(4);
    nodes[0].capacity = 2000;
    for n in &mut nodes[1..] {
        n.capacity = 1000;
    }
    let load = load(&nodes, 6000);
    // With RF 3 of 4 the share is capped at one copy per key; the heavy node still
    // holds clearly more than the others.
    assert!(load[&0] > load[&1] + 600, "{load:?}");
}

#[test]
fn with_enough_zones_replicas_are_in_distinct_zones() {
    let nodes: Vec<LayoutNode> = (0..6).map(|i| node(i, ["a", "b", "c"][i % 3], 0)).collect();
    for k in 0..2000 {
        let o = owners(&nodes, 3, "b", &format!("k{k}"));
        let mut zones: Vec<&str> = o.iter().map(|&i| nodes[i].zone.as_str()).collect();
        zones.sort();
        assert_eq!(zones, ["a", "b", "c"]);
    }
    // Two zones for three replicas: every node may be used, three distinct nodes.
    let two: Vec<LayoutNode> = (0..4).map(|i| node(i, ["a", "b"][i % 2], 0)).collect();
    for k in 0..500 {
        let mut o = owners(&two, 3, "b", &format!("k{k}"));
        o.sort();
        o.dedup();
        assert_eq!(o.len(), 3);
    }
}

#[test]
fn changes_apply_and_refuse_what_makes_no_sense() {
    let mut nodes = plain(3);
    apply(
        &mut nodes,
        &Change::Add {
            node: node(3, "", 0),
        },
    )
    .unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(
        apply(
            &mut nodes,
            &Change::Add {
                node: node(3, "", 0)
            }
        )
        .is_err()
    );
    apply(&mut nodes, &Change::Remove { id: "id0".into() }).unwrap();
    assert!(apply(&mut nodes, &Change::Remove { id: "id0".into() }).is_err());
    apply(
        &mut nodes,
        &Change::Replace {
            id: "id1".into(),
            node: node(7, "", 0),
        },
    )
    .unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["id7", "id2", "id3"]);
    // Replacing by a member is refused and changes nothing.
    let before = nodes.clone();
    let to_member = Change::Replace {
        id: "id7".into(),
        node: node(2, "", 0),
    };
    assert!(apply(&mut nodes, &to_member).is_err());
    assert_eq!(nodes, before);
}

#[test]
fn upload_records_are_placed_with_their_object_key() {
    assert_eq!(placed_key("b/uploads", "k\0id"), ("b", "k"));
    assert_eq!(placed_key("b/parts", "a/k\0id\0x"), ("b", "a/k"));
    // Only both marks together make an upload's address.
    assert_eq!(placed_key("b/uploads", "k"), ("b/uploads", "k"));
    assert_eq!(placed_key("b", "k\0id"), ("b", "k\0id"));
    assert_eq!(placed_key("b", "k"), ("b", "k"));
}
