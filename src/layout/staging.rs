//! The pure part of changing a layout: what `admin layout add/remove/replace` stage, what
//! `apply` and `revert` make of the staged change, and the retirement that ends a
//! migration. Each function takes the committed layout and returns the value to propose
//! (the register sets the revision), or why the change is refused.
//!
//! Rules, each there to keep the register's quorums intersecting and the move bounded:
//! - one change per layout version: a second change can't be staged before the first is
//!   applied or reverted, and nothing is applied while a migration runs (`previous` set);
//! - a layout never has fewer nodes than its replication factor;
//! - ids and URLs are unique among the members.

use node::proto::layout::{Change, Layout, LayoutNode, apply as apply_change};
use node::proto::valid_node_id;

/// Adds `change` to the staged changes of `layout`.
pub fn stage(layout: &Layout, change: Change) -> Result<Layout, String> {
    if !layout.staged.is_empty() {
        return Err(
            "a change is already staged: apply or revert it first (one change per layout version)"
                .into(),
        );
    }
    if let Change::Add { node } | Change::Replace { node, .. } = &change
        && !valid_node_id(&node.id)
    {
        return Err(format!("{:?} is not a valid node id", node.id));
    }
    let mut next = layout.clone();
    next.staged.push(change);
    let members = next.staged_members()?;
    if members.len() < next.replicas {
        return Err(format!(
            "the layout would have {} nodes, fewer than its {} replicas",
            members.len(),
            next.replicas
        ));
    }
    Ok(next)
}

/// Drops the staged changes.
pub fn revert(layout: &Layout) -> Result<Layout, String> {
    if layout.staged.is_empty() {
        return Err("no change is staged".into());
    }
    Ok(Layout {
        staged: Vec::new(),
        ..layout.clone()
    })
}

/// Makes the staged change the placement: a new version whose members are the staged
/// ones, with the old members kept as `previous` until the migration retires them.
pub fn apply(layout: &Layout) -> Result<Layout, String> {
    if let Some(previous) = &layout.previous {
        return Err(format!(
            "layout version {} is still migrating from {} nodes; apply again once `admin status` shows the rebalance done",
            layout.version,
            previous.len()
        ));
    }
    match layout.staged.len() {
        0 => return Err("no change is staged".into()),
        1 => {}
        n => {
            return Err(format!(
                "{n} changes are staged; apply one per layout version"
            ));
        }
    }
    let mut nodes = layout.nodes.clone();
    apply_change(&mut nodes, &layout.staged[0])?;
    Ok(Layout {
        version: layout.version + 1,
        revision: layout.revision,
        replicas: layout.replicas,
        nodes,
        previous: Some(layout.nodes.clone()),
        staged: Vec::new(),
    })
}

/// Ends the migration of `version`: the previous members stop owning keys. `None` when
/// the layout moved on (another gateway retired it, or it is no longer that version).
pub fn retire(layout: &Layout, version: u64) -> Option<Layout> {
    if layout.version != version || layout.previous.is_none() {
        return None;
    }
    Some(Layout {
        version: layout.version + 1,
        previous: None,
        ..layout.clone()
    })
}

/// The layout with members found at new addresses moved there (`seen`: id → the URL
/// that answered with it); `None` when nothing moved. A URL another member still has is
/// not taken: that is a different node at the same address, for `replace` to handle.
pub fn relocate(layout: &Layout, seen: &[(String, String)]) -> Option<Layout> {
    let mut next = layout.clone();
    let mut moved = false;
    for (id, url) in seen {
        let taken = layout
            .all_nodes()
            .iter()
            .any(|n| n.url == *url && n.id != *id);
        if taken {
            continue;
        }
        let lists = std::iter::once(&mut next.nodes).chain(next.previous.as_mut());
        for list in lists {
            for n in list.iter_mut().filter(|n| n.id == *id && n.url != *url) {
                n.url.clone_from(url);
                moved = true;
            }
        }
    }
    moved.then_some(next)
}

/// The node an `add` or `replace` brings: its id as the node answered it.
pub fn new_node(id: String, url: &str, zone: Option<String>, capacity: Option<u64>) -> LayoutNode {
    LayoutNode {
        id,
        url: url.trim_end_matches('/').to_owned(),
        zone: zone.unwrap_or_default(),
        capacity: capacity.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> LayoutNode {
        new_node(
            format!("n{i}"),
            &format!("http://127.0.0.1:{i}"),
            None,
            None,
        )
    }

    fn three() -> Layout {
        Layout::first((0..3).map(node).collect(), 3)
    }

    #[test]
    fn add_apply_retire_walks_the_versions() {
        let l = three();
        let staged = stage(&l, Change::Add { node: node(3) }).expect("stage");
        assert_eq!(staged.version, 1);
        assert_eq!(staged.nodes.len(), 3, "staging moves nothing");
        let applied = apply(&staged).expect("apply");
        assert_eq!(applied.version, 2);
        assert_eq!(applied.nodes.len(), 4);
        assert_eq!(applied.previous.as_deref(), Some(&l.nodes[..]));
        assert!(applied.staged.is_empty());
        assert!(retire(&applied, 1).is_none(), "a retire of another version");
        let done = retire(&applied, 2).expect("retire");
        assert_eq!((done.version, done.previous.is_none()), (3, true));
        assert_eq!(done.nodes, applied.nodes);
        assert!(retire(&done, 3).is_none(), "nothing to retire twice");
    }

    #[test]
    fn one_change_per_version_and_never_below_rf() {
        let l = three();
        let staged = stage(&l, Change::Add { node: node(3) }).expect("stage");
        assert!(stage(&staged, Change::Add { node: node(4) }).is_err());
        assert!(
            stage(&l, Change::Remove { id: "n0".into() }).is_err(),
            "2 < RF 3"
        );
        assert!(stage(&l, Change::Remove { id: "nope".into() }).is_err());
        assert!(
            stage(&l, Change::Add { node: node(1) }).is_err(),
            "a member already"
        );
        let bad = new_node("no spaces".into(), "http://x", None, None);
        assert!(stage(&l, Change::Add { node: bad }).is_err());
        let migrating = apply(&staged).expect("apply");
        let next = stage(&migrating, Change::Remove { id: "n0".into() }).expect("staged");
        assert!(apply(&next).is_err(), "no apply while migrating");
        assert!(apply(&l).is_err(), "nothing staged");
        let reverted = revert(&next).expect("revert");
        assert!(reverted.staged.is_empty());
        assert!(revert(&reverted).is_err());
    }

    #[test]
    fn relocate_moves_addresses_not_ids() {
        let l = three();
        let seen = vec![("n1".to_owned(), "http://new:1".to_owned())];
        let moved = relocate(&l, &seen).expect("moved");
        assert_eq!(moved.nodes[1].url, "http://new:1");
        assert_eq!(moved.nodes[1].id, "n1");
        assert!(relocate(&moved, &seen).is_none(), "already there");
        let clash = vec![("n1".to_owned(), l.nodes[2].url.clone())];
        assert!(relocate(&l, &clash).is_none(), "another member's address");
        let stranger = vec![("zz".to_owned(), "http://z".to_owned())];
        assert!(relocate(&l, &stranger).is_none());
    }

    #[test]
    fn replace_keeps_the_position_and_changes_the_id() {
        let l = three();
        let change = Change::Replace {
            id: "n1".into(),
            node: node(7),
        };
        let applied = apply(&stage(&l, change).expect("stage")).expect("apply");
        let ids: Vec<&str> = applied.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["n0", "n7", "n2"]);
    }
}
