//! The layout admin routes from outside: what a fresh cluster's layout is, and that every
//! change the rules forbid is refused with a clear status, leaving the layout as it was.

use hyper::Method;
use serde_json::{Value, json};

use crate::harness::*;

async fn refused(cluster: &Cluster, method: Method, path: &str, body: Option<Value>) -> u16 {
    let resp = cluster
        .admin_call(method, path, body, Some(ADMIN_TOKEN))
        .await;
    let text = resp.text();
    assert!(
        resp.status >= 400,
        "{path} answered {}: {text}",
        resp.status
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
    resp.status
}

#[tokio::test]
async fn layout_routes_refuse_what_the_rules_forbid() {
    let cluster = Cluster::start(3).await;
    let layout = cluster.admin(Method::GET, "/v1/layout", None).await;
    assert_eq!(layout["version"], 1);
    assert_eq!(layout["replicas"], 3);
    let nodes = layout["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["url"], cluster.node_url(i));
        assert!(n["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    let id0 = nodes[0]["id"].clone();

    let no_token = cluster
        .admin_call(Method::GET, "/v1/layout", None, None)
        .await;
    assert_eq!(no_token.status, 401, "{}", no_token.text());
    let stage = "/v1/layout/stage";
    // Fewer nodes than RF, an unknown id, a member's URL again, nothing there, bad input.
    let remove = json!({ "op": "remove", "id": id0 });
    assert_eq!(
        refused(&cluster, Method::POST, stage, Some(remove)).await,
        409
    );
    let unknown = json!({ "op": "remove", "id": "no-such-node" });
    assert_eq!(
        refused(&cluster, Method::POST, stage, Some(unknown)).await,
        409
    );
    let again = json!({ "op": "add", "url": cluster.node_url(1) });
    assert_eq!(
        refused(&cluster, Method::POST, stage, Some(again)).await,
        409
    );
    let nobody = json!({ "op": "add", "url": "http://127.0.0.1:1" });
    assert_eq!(
        refused(&cluster, Method::POST, stage, Some(nobody)).await,
        503
    );
    let not_url = json!({ "op": "add", "url": "ftp://x" });
    assert_eq!(
        refused(&cluster, Method::POST, stage, Some(not_url)).await,
        400
    );
    let odd = json!({ "op": "grow" });
    assert_eq!(refused(&cluster, Method::POST, stage, Some(odd)).await, 400);
    // Nothing staged: nothing to apply, revert or plan.
    assert_eq!(
        refused(&cluster, Method::POST, "/v1/layout/apply", None).await,
        409
    );
    assert_eq!(
        refused(&cluster, Method::POST, "/v1/layout/revert", None).await,
        409
    );
    assert_eq!(
        refused(&cluster, Method::GET, "/v1/layout/plan", None).await,
        400
    );

    let after = cluster.admin(Method::GET, "/v1/layout", None).await;
    assert_eq!(after, layout, "refused changes changed nothing");
    let cluster = &cluster;
    eventually(
        "status shows layout 1, nothing to move",
        std::time::Duration::from_secs(10),
        || async move {
            let status = cluster.gateway_status().await;
            let r = &status["rebalance"];
            let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
            let synced = nodes.len() == 3
                && nodes
                    .iter()
                    .all(|n| n["layout_synced"] == true && n["layout_version"] == 1);
            if status["layout_version"] == 1
                && r["keys_remaining"] == 0
                && r["bytes_remaining"] == 0
                && synced
            {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await;
}
