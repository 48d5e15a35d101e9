//! Users and grants through the JSON API: only system administrators
//! manage them, and each change shows at once in what the user can do.
use reqwest::Method;
use serde_json::{Value, json};

use crate::backend::{Served, hub};

#[tokio::test]
async fn system_admins_manage_users_and_grants_through_the_api() {
    let hub = hub();
    {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::orgs::add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
        dangan_hub::orgs::add(&mut conn, "330108", "滨江区", Some("330100")).unwrap();
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
    let login = |name: &str, password: &str| {
        let request = client
            .post(format!("http://{addr}/api/v1/session"))
            .json(&json!({ "username": name, "password": password }));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            (
                status,
                body["token"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let admin = hub.admin_token.clone();

    // The administrator adds a reviewer of 西湖区, who can log in.
    let (status, user) = send(
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(
            json!({ "username": "zhang", "display_name": "张三", "role": "reviewer",
                     "org": "330106", "password": "first-password" }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["org"], "330106");
    let (status, again) = send(
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(json!({ "username": "zhang", "role": "reviewer", "org": "330106", "password": "long-enough-1" })),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    let (status, bad_role) = send(
        Method::POST,
        "/api/v1/users",
        &admin,
        Some(json!({ "username": "li", "role": "emperor", "org": "330106", "password": "long-enough-1" })),
    )
    .await;
    assert_eq!(status, 400, "{bad_role}");
    let (status, reviewer) = login("zhang", "first-password").await;
    assert_eq!(status, 201);

    // A reviewer manages nothing.
    let (status, _) = send(
        Method::POST,
        "/api/v1/grants",
        &reviewer,
        Some(json!({ "username": "zhang", "org": "330108", "until": "2099-01-01", "reason": "self" })),
    )
    .await;
    assert_eq!(status, 403);

    // A grant on 滨江区 until a day, listed, then revoked.
    let (status, bad) = send(
        Method::POST,
        "/api/v1/grants",
        &admin,
        Some(json!({ "username": "zhang", "org": "330108", "until": "2001-01-01", "reason": "audit" })),
    )
    .await;
    assert_eq!(status, 400, "a grant that has already expired: {bad}");
    let (status, grant) = send(
        Method::POST,
        "/api/v1/grants",
        &admin,
        Some(
            json!({ "username": "zhang", "org": "330108", "until": "2099-12-31",
                     "reason": "2026 年度稽核" }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{grant}");
    let id = grant["id"].as_i64().unwrap();
    let (_, list) = send(Method::GET, "/api/v1/grants?user=zhang", &admin, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, _) = send(
        Method::DELETE,
        &format!("/api/v1/grants/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = send(
        Method::DELETE,
        &format!("/api/v1/grants/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404, "a grant is revoked once");
    let (_, list) = send(Method::GET, "/api/v1/grants?user=zhang", &admin, None).await;
    assert!(!list[0]["revoked_at"].is_null(), "{list}");

    // A new password ends the old sessions; disabling refuses the login.
    let (status, _) = send(
        Method::PATCH,
        "/api/v1/users/zhang",
        &admin,
        Some(json!({ "password": "second-password" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(Method::GET, "/api/v1/session", &reviewer, None).await;
    assert_eq!(
        status, 401,
        "the old session ended with the password change"
    );
    assert_eq!(login("zhang", "first-password").await.0, 401);
    assert_eq!(login("zhang", "second-password").await.0, 201);
    let (status, user) = send(
        Method::PATCH,
        "/api/v1/users/zhang",
        &admin,
        Some(json!({ "disabled": true })),
    )
    .await;
    assert_eq!((status, user["disabled"].clone()), (200, json!(true)));
    assert_eq!(login("zhang", "second-password").await.0, 401);
    let (status, _) = send(
        Method::PATCH,
        "/api/v1/users/zhang",
        &admin,
        Some(json!({ "disabled": false })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(login("zhang", "second-password").await.0, 201);
    let (status, _) = send(
        Method::PATCH,
        "/api/v1/users/nobody",
        &admin,
        Some(json!({ "disabled": true })),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        Method::PATCH,
        "/api/v1/users/zhang",
        &admin,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400);

    // Every change is in the audit trail, in order, by the administrator.
    let entries = {
        let conn = hub.backend.db().get().unwrap();
        dangan_hub::audit::query(&conn, &dangan_hub::audit::Filter::default()).unwrap()
    };
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e.actor == "admin")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "user.add",
            "grant.add",
            "grant.revoke",
            "user.password",
            "user.disable",
            "user.enable"
        ]
    );
    served.stop().await;
}
