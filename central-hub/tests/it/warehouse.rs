//! The warehouse feeds (sync v2) over a real HTTP hub, driven by the real
//! sync client: events applied once and in order, shown as a business
//! file's `original`; resends, interrupted pushes and gaps; districts kept
//! apart; loan requests from the hub's API to the district's feed; and an
//! edge of the previous release (v1) still syncing batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use dangan_shared::BlobId;
use dangan_sync::ProtocolVersion;
use dangan_sync::client::{Client, ClientError, ClientOptions, file_body};
use dangan_sync::wire::{
    CommitRequest, ErrorCode, MANIFEST_FORMAT, Manifest, ManifestFile, ManifestPage,
    WarehouseChange, WarehouseEvent, WarehouseEvents,
};
use serde_json::Value;

use crate::backend::{Hub, Served, hub};

const PASSWORD: &str = "a-good-password";
const FEED: &str = "9d1c7e2a-5b3f-4e8d-a6c0-2f4b8e1d3c5a";

/// The sync client of a node with `token`, speaking `protocol`.
fn sync_client(served: &Served, token: &str, protocol: ProtocolVersion) -> Client {
    Client::new(
        &format!("http://{}", served.addr),
        ClientOptions {
            token: Some(token.to_owned()),
            protocol,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn page_bytes(district: &str, batch: &str, seq: u32) -> Vec<u8> {
    format!("{district} {batch} page {seq} ")
        .repeat(40)
        .into_bytes()
}

/// A batch of `files` business files of one page each.
fn manifest(district: &str, batch: &str, files: u32) -> (Manifest, Vec<Vec<u8>>) {
    let blobs: Vec<Vec<u8>> = (1..=files)
        .map(|seq| page_bytes(district, batch, seq))
        .collect();
    let business_files = blobs
        .iter()
        .zip(1..)
        .map(|(bytes, seq)| ManifestFile {
            business_number: Some(format!("YL{district}{seq:04}")),
            business_type: Some("YL01".into()),
            category: Some("records".into()),
            date: Some("2026-11-20".into()),
            employer_id: None,
            organisation: district.into(),
            pages: vec![ManifestPage {
                barcodes: Vec::new(),
                blank: false,
                blob: BlobId::of(bytes),
                colour: "gray".into(),
                dpi: Some(300),
                format: "jpeg".into(),
                frame: 0,
                height: 3508,
                separator: false,
                seq,
                size: bytes.len() as u64,
                source: format!("扫描/{seq}.jpg"),
                width: 2480,
            }],
            person_id: None,
            person_name: Some("王五".into()),
            retention: Some("30y".into()),
            seq,
        })
        .collect();
    let manifest = Manifest {
        accepted_at: "2026-11-25T10:00:00Z".into(),
        batch: batch.into(),
        business_files,
        business_type: Some("YL01".into()),
        bytes: blobs.iter().map(|b| b.len() as u64).sum(),
        district: district.into(),
        format: MANIFEST_FORMAT.into(),
        pages: u64::from(files),
    };
    (manifest, blobs)
}

/// Offers, uploads and commits a batch through `client`; returns the hub
/// ids of its business files in order.
async fn archive(hub: &Hub, client: &Client, district: &str, batch: &str, files: u32) -> Vec<i64> {
    let (manifest, blobs) = manifest(district, batch, files);
    let (canonical, hash) = dangan_sync::manifest_hash(&manifest).unwrap();
    let offer = client.offer(canonical, &hash).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for missing in &offer.missing {
        let bytes = blobs
            .iter()
            .find(|b| BlobId::of(b) == missing.blob)
            .unwrap();
        let path = dir.path().join(missing.blob.to_hex());
        std::fs::write(&path, bytes).unwrap();
        let status = client
            .upload_blob(
                missing.blob,
                0,
                missing.size,
                false,
                file_body(&path, 0, missing.size, false).await.unwrap(),
            )
            .await
            .unwrap();
        assert!(status.complete);
    }
    let receipt = client
        .commit(&CommitRequest {
            batch: batch.into(),
            manifest_hash: hash.clone(),
        })
        .await
        .unwrap();
    assert_eq!(receipt.body.manifest_hash, hash);
    let conn = hub.backend.db().get().unwrap();
    let mut statement = conn
        .prepare(
            "SELECT f.id FROM business_files f JOIN batches b ON b.id = f.batch_id
             WHERE b.district = ?1 AND b.batch = ?2 ORDER BY f.seq",
        )
        .unwrap();
    statement
        .query_map([district, batch], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn event(seq: u64, change: WarehouseChange) -> WarehouseEvent {
    WarehouseEvent {
        seq,
        recorded_at: format!("2026-11-26T08:{:02}:00Z", seq % 60),
        actor: "库管员赵六".into(),
        change,
    }
}

fn location(seq: u64, code: &str, kind: &str, name: &str, parent: Option<&str>) -> WarehouseEvent {
    event(
        seq,
        WarehouseChange::Location {
            code: code.into(),
            location_kind: kind.into(),
            name: name.into(),
            parent: parent.map(Into::into),
            capacity: None,
        },
    )
}

fn volume(seq: u64, code: &str, box_code: &str) -> WarehouseEvent {
    event(
        seq,
        WarehouseChange::Volume {
            code: code.into(),
            title: "2026年养老保险待遇申领".into(),
            box_code: Some(box_code.into()),
            retention: Some("30y".into()),
            date_from: Some("2026-11-01".into()),
            date_to: Some("2026-11-30".into()),
        },
    )
}

fn bind(seq: u64, batch: &str, file_seq: u32, volume: Option<&str>) -> WarehouseEvent {
    event(
        seq,
        WarehouseChange::FileVolume {
            batch: batch.into(),
            file_seq,
            business_number: None,
            volume: volume.map(Into::into),
        },
    )
}

fn loan(
    seq: u64,
    number: u64,
    item: &str,
    state: &str,
    due_date: &str,
    hub_request: Option<u64>,
) -> WarehouseEvent {
    event(
        seq,
        WarehouseChange::Loan {
            loan: number,
            item: item.into(),
            state: state.into(),
            borrower: "稽核科李四".into(),
            purpose: "专项稽核".into(),
            due_date: due_date.into(),
            requested_by: "li".into(),
            approved_by: None,
            lent_at: (state == "lent").then(|| "2026-11-26T09:00:00Z".into()),
            returned_at: None,
            hub_request,
        },
    )
}

/// A warehouse of 西湖区: room K01 › cabinet C03 › shelf S3-2 › box BOX-0001
/// holding volume VOL-0001 (events 1 to 5).
fn shelving() -> Vec<WarehouseEvent> {
    vec![
        location(1, "K01", "room", "一号库房", None),
        location(2, "C03", "cabinet", "第3列", Some("K01")),
        location(3, "S3-2", "shelf", "第2层", Some("C03")),
        location(4, "BOX-0001", "box", "盒1", Some("S3-2")),
        volume(5, "VOL-0001", "BOX-0001"),
    ]
}

fn push(events: Vec<WarehouseEvent>) -> WarehouseEvents {
    WarehouseEvents {
        feed: FEED.into(),
        events,
    }
}

fn day(offset_days: i64) -> String {
    let today = dangan_hub::warehouse::today(&jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let today: jiff::civil::Date = today.parse().unwrap();
    today
        .checked_add(jiff::Span::new().days(offset_days))
        .unwrap()
        .to_string()
}

/// Adds a user of `role` in `org` and logs them in: their session token.
async fn user(
    hub: &Hub,
    served: &Served,
    name: &str,
    role: dangan_hub::users::Role,
    org: &str,
) -> String {
    {
        let mut conn = hub.backend.db().get().unwrap();
        let cheap = dangan_shared::password::PasswordCost {
            memory_kib: 8,
            iterations: 1,
        };
        dangan_hub::users::add(&mut conn, name, Some("张审核"), role, org, PASSWORD, cheap)
            .unwrap();
    }
    let body: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/session", served.addr))
        .json(&serde_json::json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn file_json(served: &Served, token: &str, id: i64) -> Value {
    let response = reqwest::Client::new()
        .get(format!("http://{}/api/v1/files/{id}", served.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

fn count(hub: &Hub, sql: &str) -> i64 {
    hub.backend
        .db()
        .get()
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

fn hub_code(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, Option<ErrorCode>, String) {
    match result {
        Err(ClientError::Hub {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected a hub error, got {other:?}"),
    }
}

/// Events sent before their batch is archived, then applied in order, show
/// as the file's `original`: the path from the room to the box, the
/// volume, and the loan (overdue once its due date has passed); the web
/// page shows the same.
#[tokio::test]
async fn events_show_where_an_original_is_and_whether_it_is_out() {
    let hub = hub();
    let (_, token) = hub.node("330106").await;
    let served = Served::start(&hub).await;
    let edge = sync_client(&served, &token, ProtocolVersion::V2);
    assert_eq!(edge.warehouse_cursor(FEED).await.unwrap().cursor, 0);
    let mut events = shelving();
    events.push(bind(6, "B1", 1, Some("VOL-0001")));
    assert_eq!(edge.push_warehouse(&push(events)).await.unwrap().cursor, 6);
    let ids = archive(&hub, &edge, "330106", "B1", 2).await;
    let reviewer = user(
        &hub,
        &served,
        "zhang",
        dangan_hub::users::Role::Reviewer,
        "330106",
    )
    .await;

    let file = file_json(&served, &reviewer, ids[0]).await;
    let original = &file["original"];
    assert_eq!(original["volume"], "VOL-0001");
    assert_eq!(original["volume_title"], "2026年养老保险待遇申领");
    assert_eq!(original["box"], "BOX-0001");
    let path: Vec<(&str, &str, &str)> = original["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap(),
                p["kind"].as_str().unwrap(),
                p["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            ("K01", "room", "一号库房"),
            ("C03", "cabinet", "第3列"),
            ("S3-2", "shelf", "第2层"),
            ("BOX-0001", "box", "盒1"),
        ]
    );
    assert_eq!(original["loan"], Value::Null);
    assert_eq!(original["requests"], serde_json::json!([]));
    // The other file of the batch is in no volume.
    assert_eq!(
        file_json(&served, &reviewer, ids[1]).await["original"],
        Value::Null
    );

    // Lent, due yesterday: overdue.
    edge.push_warehouse(&push(vec![loan(7, 1, "VOL-0001", "lent", &day(-1), None)]))
        .await
        .unwrap();
    let loan_json = file_json(&served, &reviewer, ids[0]).await["original"]["loan"].clone();
    assert_eq!(
        loan_json,
        serde_json::json!({
            "item": "VOL-0001", "state": "lent", "borrower": "稽核科李四",
            "due_date": day(-1), "overdue": true
        })
    );
    // The web page shows the place and the overdue loan.
    let cookie = format!("{}={reviewer}", dangan_hub::api::COOKIE);
    let page = reqwest::Client::new()
        .get(format!("http://{}/files/{}", served.addr, ids[0]))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="original""#), "{page}");
    assert!(
        page.contains("一号库房 (K01) › 第3列 › 第2层 › 盒 BOX-0001 › 卷 VOL-0001"),
        "{page}"
    );
    assert!(page.contains("已逾期"), "{page}");
    assert!(
        page.contains(r#"id="loan-request""#),
        "a reviewer may ask for it"
    );
    // The administrators' list of originals out shows it, overdue; a
    // reviewer may not see that list.
    let keeper = user(
        &hub,
        &served,
        "wu",
        dangan_hub::users::Role::ArchiveAdmin,
        "330100",
    )
    .await;
    let list = |token: String| {
        let request = reqwest::Client::new()
            .get(format!("http://{}/originals", served.addr))
            .header("Cookie", format!("{}={token}", dangan_hub::api::COOKIE));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, listed) = list(keeper).await;
    assert_eq!(status, 200);
    assert!(
        listed.contains("VOL-0001") && listed.contains("已逾期"),
        "{listed}"
    );
    assert_eq!(list(reviewer.clone()).await.0, 403);
    // The archive admin of another district does not see 330106's loans.
    {
        let conn = hub.backend.db().get().unwrap();
        dangan_hub::orgs::ensure_district_org(&conn, "330108").unwrap();
    }
    let other = user(
        &hub,
        &served,
        "qian",
        dangan_hub::users::Role::ArchiveAdmin,
        "330108",
    )
    .await;
    let (status, listed) = list(other).await;
    assert_eq!(status, 200);
    assert!(!listed.contains("VOL-0001"), "{listed}");

    // Returned; then the box is lent, due in a week: the loan of the box is
    // the volume's, and not overdue.
    edge.push_warehouse(&push(vec![
        loan(8, 1, "VOL-0001", "returned", &day(-1), None),
        loan(9, 2, "BOX-0001", "lent", &day(7), None),
    ]))
    .await
    .unwrap();
    let loan_json = file_json(&served, &reviewer, ids[0]).await["original"]["loan"].clone();
    assert_eq!(loan_json["item"], "BOX-0001");
    assert_eq!(loan_json["overdue"], false);
    // Moving the box to another shelf moves the path.
    edge.push_warehouse(&push(vec![
        location(10, "S1-1", "shelf", "第1层", Some("C03")),
        location(11, "BOX-0001", "box", "盒1", Some("S1-1")),
        loan(12, 2, "BOX-0001", "returned", &day(7), None),
    ]))
    .await
    .unwrap();
    let original = file_json(&served, &reviewer, ids[0]).await["original"].clone();
    assert_eq!(original["path"][2]["code"], "S1-1");
    assert_eq!(original["loan"], Value::Null);
    assert_eq!(count(&hub, "SELECT count(*) FROM warehouse_events"), 12);
    assert_eq!(
        count(
            &hub,
            "SELECT count(*) FROM wh_loans WHERE state = 'returned'"
        ),
        2
    );
    served.stop().await;
}

/// Sending events again changes nothing; an interrupted push (1–5, then
/// 1–10 again) applies 6–10 once; a gap gets 409 feed_gap naming the
/// cursor, and nothing of it is applied.
#[tokio::test]
async fn resends_and_interrupted_pushes_apply_once_and_gaps_are_refused() {
    let hub = hub();
    let (_, token) = hub.node("330106").await;
    let served = Served::start(&hub).await;
    let edge = sync_client(&served, &token, ProtocolVersion::V2);
    let ten: Vec<WarehouseEvent> = (1..=10)
        .map(|seq| {
            location(
                seq,
                &format!("K{seq:02}"),
                "room",
                &format!("{seq}号库房"),
                None,
            )
        })
        .collect();
    assert_eq!(
        edge.push_warehouse(&push(ten[..5].to_vec()))
            .await
            .unwrap()
            .cursor,
        5
    );
    assert_eq!(
        edge.push_warehouse(&push(ten[..5].to_vec()))
            .await
            .unwrap()
            .cursor,
        5
    );
    assert_eq!(count(&hub, "SELECT count(*) FROM warehouse_events"), 5);
    let first_history: String = hub
        .backend
        .db()
        .get()
        .unwrap()
        .query_row(
            "SELECT received_at || body FROM warehouse_events WHERE seq = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        edge.push_warehouse(&push(ten.clone()))
            .await
            .unwrap()
            .cursor,
        10
    );
    assert_eq!(count(&hub, "SELECT count(*) FROM warehouse_events"), 10);
    assert_eq!(
        count(&hub, "SELECT count(DISTINCT seq) FROM warehouse_events"),
        10
    );
    assert_eq!(count(&hub, "SELECT count(*) FROM wh_locations"), 10);
    let history: String = hub
        .backend
        .db()
        .get()
        .unwrap()
        .query_row(
            "SELECT received_at || body FROM warehouse_events WHERE seq = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(history, first_history, "history is never rewritten");

    // A gap: 12 and 13 after the cursor 10.
    let gap = push(vec![
        location(12, "K12", "room", "12号库房", None),
        location(13, "K13", "room", "13号库房", None),
    ]);
    let (status, code, message) = hub_code(edge.push_warehouse(&gap).await);
    assert_eq!((status, code), (409, Some(ErrorCode::FeedGap)));
    assert!(message.contains("is 10"), "{message}");
    assert_eq!(edge.warehouse_cursor(FEED).await.unwrap().cursor, 10);
    assert_eq!(count(&hub, "SELECT count(*) FROM warehouse_events"), 10);
    assert_eq!(count(&hub, "SELECT count(*) FROM wh_locations"), 10);
    // A gap inside one body is the router's 400.
    let (status, code, _) = hub_code(
        edge.push_warehouse(&push(vec![
            ten[9].clone(),
            location(12, "K12", "room", "x", None),
        ]))
        .await,
    );
    assert_eq!((status, code), (400, Some(ErrorCode::Malformed)));
    served.stop().await;
}

/// Node A's events never show in district B (even for a batch of the same
/// name, and even for the same feed id); a reviewer's loan request reaches
/// the file's district's loan-request feed only, and drops out of the
/// file's open requests once the edge answers it with a loan.
#[tokio::test]
async fn districts_keep_their_warehouses_and_loan_requests_apart() {
    use dangan_hub::users::Role;
    let hub = hub();
    let (_, west_token) = hub.node("330106").await;
    let (_, river_token) = hub.node("330108").await;
    let served = Served::start(&hub).await;
    let west = sync_client(&served, &west_token, ProtocolVersion::V2);
    let river = sync_client(&served, &river_token, ProtocolVersion::V2);
    let west_ids = archive(&hub, &west, "330106", "B1", 2).await;
    let river_ids = archive(&hub, &river, "330108", "B1", 1).await;
    let mut events = shelving();
    events.push(bind(6, "B1", 1, Some("VOL-0001")));
    west.push_warehouse(&push(events)).await.unwrap();
    assert_eq!(river.warehouse_cursor(FEED).await.unwrap().cursor, 0);

    let west_reviewer = user(&hub, &served, "zhang", Role::Reviewer, "330106").await;
    let river_reviewer = user(&hub, &served, "chen", Role::Reviewer, "330108").await;
    let auditor = user(&hub, &served, "li", Role::Auditor, "330106").await;
    assert_eq!(
        file_json(&served, &river_reviewer, river_ids[0]).await["original"],
        Value::Null
    );
    assert_eq!(
        file_json(&served, &west_reviewer, west_ids[0]).await["original"]["volume"],
        "VOL-0001"
    );

    let http = reqwest::Client::new();
    let request = |token: &str, id: i64, body: Value| {
        let request = http
            .post(format!(
                "http://{}/api/v1/files/{id}/loan-requests",
                served.addr
            ))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };
    let asked = serde_json::json!({ "purpose": "待遇复核", "due_date": day(14) });
    let (status, made) = request(&west_reviewer, west_ids[0], asked.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["item"], "VOL-0001");
    assert_eq!(made["requested_by"], "zhang");
    assert!(
        made["borrower"].as_str().unwrap().starts_with("张审核 ("),
        "{made}"
    );
    // Refused: out of scope (the same 404 as no file), a role that does not
    // borrow, a file in no volume, a due date in the past, no purpose.
    assert_eq!(
        request(&west_reviewer, river_ids[0], asked.clone()).await.0,
        404
    );
    assert_eq!(request(&west_reviewer, 999_999, asked.clone()).await.0, 404);
    assert_eq!(request(&auditor, west_ids[0], asked.clone()).await.0, 403);
    let (status, body) = request(&west_reviewer, west_ids[1], asked.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("no_original")),
        "{body}"
    );
    let past = serde_json::json!({ "purpose": "待遇复核", "due_date": day(-1) });
    assert_eq!(request(&west_reviewer, west_ids[0], past).await.0, 400);
    let blank = serde_json::json!({ "purpose": " ", "due_date": day(3) });
    assert_eq!(request(&west_reviewer, west_ids[0], blank).await.0, 400);
    let audited = dangan_hub::audit::query(
        &hub.backend.db().get().unwrap(),
        &dangan_hub::audit::Filter {
            action: Some("original.request".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let results: Vec<&str> = audited.iter().map(|e| e.result.as_str()).collect();
    assert_eq!(results, ["ok", "denied", "denied", "denied", "failed"]);

    // The request is in 西湖区's feed only.
    let feed = west.loan_requests(0).await.unwrap();
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(feed.entries[0].seq, made["seq"].as_u64().unwrap());
    assert_eq!(feed.entries[0].purpose, "待遇复核");
    assert_eq!(feed.next, feed.entries[0].seq);
    assert!(!feed.more);
    assert!(
        west.loan_requests(feed.next)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert!(river.loan_requests(0).await.unwrap().entries.is_empty());
    let open = file_json(&served, &west_reviewer, west_ids[0]).await["original"].clone();
    assert_eq!(open["requests"].as_array().unwrap().len(), 1);
    assert_eq!(open["loan"], Value::Null);

    // The edge answers with a loan naming the request: it is no longer an
    // open request, and the loan shows.
    let seq = feed.entries[0].seq;
    west.push_warehouse(&push(vec![loan(
        7,
        1,
        "VOL-0001",
        "requested",
        &day(14),
        Some(seq),
    )]))
    .await
    .unwrap();
    let answered = file_json(&served, &west_reviewer, west_ids[0]).await["original"].clone();
    assert_eq!(answered["requests"], serde_json::json!([]));
    assert_eq!(answered["loan"]["state"], "requested");

    // 滨江区 binding its own B1 file 1 into a volume of the same code shows
    // in its file only, from its own feed.
    river
        .push_warehouse(&push(vec![
            location(1, "K9", "room", "滨江库房", None),
            location(2, "BOX-0001", "box", "滨江盒", Some("K9")),
            volume(3, "VOL-0001", "BOX-0001"),
            bind(4, "B1", 1, Some("VOL-0001")),
        ]))
        .await
        .unwrap();
    let theirs = file_json(&served, &river_reviewer, river_ids[0]).await["original"].clone();
    assert_eq!(theirs["path"][0]["code"], "K9");
    assert_eq!(theirs["loan"], Value::Null, "西湖区's loan is not 滨江区's");
    let ours = file_json(&served, &west_reviewer, west_ids[0]).await["original"].clone();
    assert_eq!(ours["path"][0]["code"], "K01");
    assert_eq!(west.warehouse_cursor(FEED).await.unwrap().cursor, 7);
    assert_eq!(river.warehouse_cursor(FEED).await.unwrap().cursor, 4);
    served.stop().await;
}

/// An edge of the previous release speaks `/sync/v1`: it still enrols its
/// batches into the real hub, and its client has no warehouse feed.
#[tokio::test]
async fn a_previous_version_edge_still_syncs_a_batch() {
    let hub = hub();
    let (_, token) = hub.node("330106").await;
    let served = Served::start(&hub).await;
    let old = sync_client(&served, &token, ProtocolVersion::V1);
    let ids = archive(&hub, &old, "330106", "OLD-1", 3).await;
    assert_eq!(ids.len(), 3);
    let listing = old.list_batches(None).await.unwrap();
    assert_eq!(listing.batches.len(), 1);
    assert_eq!(listing.batches[0].batch, "OLD-1");
    assert!(matches!(
        old.warehouse_cursor(FEED).await,
        Err(ClientError::Unsupported { .. })
    ));
    // The same node speaking v2 sees the same batch.
    let new = sync_client(&served, &token, ProtocolVersion::V2);
    assert_eq!(new.list_batches(None).await.unwrap(), listing);
    served.stop().await;
}
