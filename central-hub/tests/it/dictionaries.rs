//! The common dictionaries and templates through the JSON API: everyone
//! logged in reads them, only system administrators publish, every
//! publication is a new audited version, and invalid content is refused
//! with the reason.
use reqwest::Method;
use serde_json::{Value, json};

use crate::backend::{Served, hub};

#[tokio::test]
async fn dictionaries_are_versioned_read_by_all_and_published_by_system_admins() {
    let hub = hub();
    {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::orgs::add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
        let cheap = dangan_shared::password::PasswordCost {
            memory_kib: 8,
            iterations: 1,
        };
        for (name, role) in [
            ("zhang", dangan_hub::users::Role::Reviewer),
            ("li", dangan_hub::users::Role::Auditor),
        ] {
            dangan_hub::users::add(
                &mut conn,
                name,
                None,
                role,
                "330106",
                "a-good-password",
                cheap,
            )
            .unwrap();
        }
    }
    let served = Served::start(&hub).await;
    let client = reqwest::Client::new();
    let addr = served.addr;
    let send = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("http://{addr}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };
    let login = |name: &str| {
        let request = client
            .post(format!("http://{addr}/api/v1/session"))
            .json(&json!({ "username": name, "password": "a-good-password" }));
        async move {
            let session: Value = request.send().await.unwrap().json().await.unwrap();
            session["token"].as_str().unwrap().to_owned()
        }
    };
    let reviewer = login("zhang").await;
    let auditor = login("li").await;
    let admin = hub.admin_token.clone();

    // Everyone logged in reads what is in force: version 1, shipped.
    let (status, all) = send(Method::GET, "/api/v1/dictionaries", &reviewer, None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["defects"]["version"], 1);
    assert_eq!(all["defects"]["author"], "seed");
    let head = all["feed_head"].as_u64().unwrap();
    assert!(head > 3, "{all}");
    let (status, _) = send(Method::GET, "/api/v1/dictionaries", "dgs_nobody", None).await;
    assert_eq!(status, 401);

    // A reviewer may not publish.
    let mut entries = all["retentions"]["entries"].clone();
    let (status, body) = send(
        Method::PUT,
        "/api/v1/dictionaries/retentions",
        &reviewer,
        Some(json!({ "entries": entries })),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // The administrator renames an entry: version 2. The same content
    // again changes nothing.
    for entry in entries.as_array_mut().unwrap() {
        if entry["code"] == "10" {
            entry["zh"] = json!("短期（10年）");
        }
    }
    let put = |entries: &Value| {
        send(
            Method::PUT,
            "/api/v1/dictionaries/retentions",
            &admin,
            Some(json!({ "entries": entries })),
        )
    };
    let (status, outcome) = put(&entries).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({ "version": 2, "changed": true }));
    let (_, outcome) = put(&entries).await;
    assert_eq!(outcome, json!({ "version": 2, "changed": false }));
    let (_, v1) = send(
        Method::GET,
        "/api/v1/dictionaries/retentions?version=1",
        &reviewer,
        None,
    )
    .await;
    assert!(v1.to_string().contains("10年"), "{v1}");
    assert!(!v1.to_string().contains("短期"), "{v1}");

    // Retiring the permanent retention would strand templates using it;
    // an unknown code cannot be invented.
    let mut stranded = entries.clone();
    for entry in stranded.as_array_mut().unwrap() {
        if entry["code"] == "permanent" {
            entry["active"] = json!(false);
        }
    }
    let (status, body) = put(&stranded).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("retired"),
        "{body}"
    );
    let mut invented = entries.clone();
    invented.as_array_mut().unwrap()[0]["code"] = json!("5");
    let (status, body) = put(&invented).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = send(
        Method::PUT,
        "/api/v1/dictionaries/colours",
        &admin,
        Some(json!({ "entries": [] })),
    )
    .await;
    assert_eq!(status, 404);

    // Templates: a new version, a new business type, and refusals.
    let (status, a01) = send(Method::GET, "/api/v1/templates/A01", &reviewer, None).await;
    assert_eq!(status, 200, "{a01}");
    assert_eq!(a01["version"], 1);
    let mut template = a01.clone();
    for field in ["version", "author", "recorded_at"] {
        template.as_object_mut().unwrap().remove(field);
    }
    template["qc"]["rate"] = json!(0.1);
    let (status, outcome) = send(
        Method::PUT,
        "/api/v1/templates/A01",
        &admin,
        Some(template.clone()),
    )
    .await;
    assert_eq!(
        (status, outcome),
        (200, json!({ "version": 2, "changed": true }))
    );
    let mut new_type = template.clone();
    new_type["business_type"] = json!("Z99");
    new_type["name"] = json!("试点业务");
    let (status, outcome) = send(
        Method::PUT,
        "/api/v1/templates/Z99",
        &admin,
        Some(new_type.clone()),
    )
    .await;
    assert_eq!(
        (status, outcome),
        (201, json!({ "version": 1, "changed": true }))
    );
    let (status, _) = send(Method::PUT, "/api/v1/templates/A02", &admin, Some(new_type)).await;
    assert_eq!(
        status, 400,
        "the path and the body name different business types"
    );
    template["min_dpi"] = json!(20);
    let (status, body) = send(Method::PUT, "/api/v1/templates/A01", &admin, Some(template)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("min_dpi"),
        "{body}"
    );
    let (status, _) = send(
        Method::GET,
        "/api/v1/templates/A01?version=9",
        &reviewer,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The feed the edges read carries exactly the three new versions.
    let feed = {
        let conn = hub.backend.db().get().unwrap();
        dangan_hub::dictionaries::feed(&conn, head, 100).unwrap()
    };
    let published: Vec<(u32, String)> = feed
        .entries
        .iter()
        .map(|e| {
            let what = match &e.item {
                dangan_sync::wire::FeedItem::Template { template } => {
                    template.business_type.clone()
                }
                dangan_sync::wire::FeedItem::Dictionary { dictionary } => {
                    dictionary.kind.to_string()
                }
            };
            (e.version, what)
        })
        .collect();
    assert_eq!(
        published,
        vec![
            (2, "retentions".to_owned()),
            (2, "A01".to_owned()),
            (1, "Z99".to_owned())
        ]
    );

    // Each publication is in the audit trail; refusals change nothing.
    let (status, audit) = send(
        Method::GET,
        "/api/v1/audit?action=template.publish",
        &auditor,
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("A01") && text.contains("Z99"), "{audit}");
    served.stop().await;
}
