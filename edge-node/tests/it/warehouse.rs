//! The warehouse (库房管理) over the real `dangan-edge serve`: setting up
//! locations, shelving by API and CSV, volumes of accepted business files,
//! label sheets as PDF, loans with roles, errors in the operator's
//! language; and the keyboard-wedge screens in headless Chromium
//! (tests/browser/warehouse.mjs).
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Edge;
use crate::common::server::{Server, Session, add_admin, send};

fn fast_passwords(edge: &Edge) {
    edge.write_config("[users]\nmemory_kib = 8\niterations = 1\n");
}

/// The admin `chief`, the operator `wang` and the inspector `li`, logged in.
fn staff(server: &Server) -> [Session<'_>; 3] {
    let chief = Session {
        server,
        token: server.login("chief", "chief-password"),
    };
    for (name, role) in [("wang", "operator"), ("li", "inspector")] {
        chief.ok(
            Method::POST,
            "/api/v1/users",
            json!({ "username": name, "role": role, "password": format!("{name}-password") }),
        );
    }
    let wang = Session {
        server,
        token: server.login("wang", "wang-password"),
    };
    let li = Session {
        server,
        token: server.login("li", "li-password"),
    };
    [chief, wang, li]
}

/// Room K01 with cabinet L01, shelves S1 (capacity 2) and S2 straight in
/// the cabinet, and a section J1 with shelf S3.
fn set_up_room(chief: &Session<'_>) {
    for (code, kind, name, parent, capacity) in [
        ("K01", "room", "一号库房", None, None),
        ("K01-L01", "cabinet", "第1列", Some("K01"), None),
        ("K01-L01-S1", "shelf", "第1层", Some("K01-L01"), Some(2)),
        ("K01-L01-S2", "shelf", "第2层", Some("K01-L01"), None),
        ("K01-L01-J1", "section", "第1节", Some("K01-L01"), None),
        ("K01-L01-J1-S3", "shelf", "第3层", Some("K01-L01-J1"), None),
    ] {
        chief.ok(
            Method::POST,
            "/api/v1/warehouse/locations",
            json!({ "code": code, "kind": kind, "name": name, "parent": parent, "capacity": capacity }),
        );
    }
}

fn zh(session: &Session<'_>, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    send(
        session
            .request(method, path)
            .header("accept-language", "zh-CN,zh;q=0.9")
            .json(&body),
    )
}

#[test]
fn an_archive_room_shelves_labels_and_lends_its_boxes_over_the_api() {
    let edge = Edge::new();
    fast_passwords(&edge);
    add_admin(&edge);
    // An accepted batch whose business files go into a volume.
    let folders = dangan_testkit::sets::write_district(&edge.inputs("scans"), 1, 6).expect("pages");
    edge.json(&[
        "ingest",
        "--batch",
        "B-2019",
        folders[0].to_str().expect("path"),
    ]);
    edge.json(&["batch", "accept", "B-2019", "--reason", "QC done on paper"]);
    let server = Server::start(&edge);
    let [chief, wang, li] = staff(&server);
    set_up_room(&chief);

    // Operators make boxes but not rooms; the refusal is in Chinese when asked.
    let (status, body) = zh(
        &wang,
        Method::POST,
        "/api/v1/warehouse/locations",
        json!({ "code": "K02", "kind": "room", "name": "二号库房" }),
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("无权")),
        "{body}"
    );
    for code in ["BOX-0001", "BOX-0002", "BOX-0003"] {
        wang.ok(
            Method::POST,
            "/api/v1/warehouse/locations",
            json!({ "code": code, "kind": "box", "name": format!("{code} 2019年 养老"), "capacity": 3 }),
        );
    }
    // A box goes on a shelf, not in a cabinet; a full shelf takes no more.
    let (status, body) = zh(
        &wang,
        Method::POST,
        "/api/v1/warehouse/shelvings",
        json!({ "box": "BOX-0001", "shelf": "K01-L01" }),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("不是层")),
        "{body}"
    );
    let moved = wang.ok(
        Method::POST,
        "/api/v1/warehouse/shelvings",
        json!({ "box": "box-0001", "shelf": "K01-L01-S1" }),
    );
    assert_eq!(moved["moved"], true);
    assert_eq!(
        moved["path"].as_array().map(|p| p
            .iter()
            .map(|l| l["code"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()),
        Some(vec!["K01", "K01-L01", "K01-L01-S1", "BOX-0001"])
    );
    // A CSV: the bad line is named and nothing moves; then the good one.
    let csv = |text: &'static str| {
        send(
            wang.request(Method::POST, "/api/v1/warehouse/shelvings/csv")
                .header("content-type", "text/csv")
                .body(text),
        )
    };
    let (status, body) = csv("box,shelf\nBOX-0002,K01-L01-S1\nBOX-0003,K01-L01-S1\n");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 3")),
        "{body}"
    );
    assert!(wang.get("/api/v1/warehouse/locations/BOX-0002")["location"]["parent"].is_null());
    let (status, body) = csv("box,shelf\nBOX-0002,K01-L01-S1\nBOX-0003,K01-L01-J1-S3\n");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["moved"], 2);
    // The room as a grid, shelves in code order: S3 (in section J1) one
    // box, S1 full (2 of 2), S2 empty.
    let grid = wang.get("/api/v1/warehouse/rooms/K01/grid");
    let cells: Vec<(String, usize)> = grid["columns"][0]["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            (
                c["shelf"]["code"].as_str().unwrap_or("").to_owned(),
                c["boxes"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            ("K01-L01-J1-S3".to_owned(), 1),
            ("K01-L01-S1".to_owned(), 2),
            ("K01-L01-S2".to_owned(), 0),
        ]
    );

    // A volume of the accepted batch's first two business files.
    wang.ok(
        Method::POST,
        "/api/v1/warehouse/volumes",
        json!({ "code": "VOL-2019-0001", "title": "2019年度 基本养老金核定 第1卷", "box": "BOX-0001", "retention": "permanent" }),
    );
    for file in [1, 2] {
        wang.ok(
            Method::POST,
            "/api/v1/warehouse/volumes/VOL-2019-0001/files",
            json!({ "batch": "B-2019", "file": file }),
        );
    }
    let volume = wang.get("/api/v1/warehouse/volumes/VOL-2019-0001");
    assert_eq!(volume["files"].as_array().map(Vec::len), Some(2));
    assert_eq!(volume["path"].as_array().map(Vec::len), Some(4));
    assert!(volume["loan"].is_null());

    // Labels: a PDF with one label per code, the Chinese title in it.
    let response = wang
        .request(Method::POST, "/api/v1/warehouse/labels")
        .json(&json!({ "codes": ["VOL-2019-0001", "BOX-0001", "K01-L01-S1"], "start": 2 }))
        .send()
        .expect("labels");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().expect("pdf");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("labels.pdf");
    std::fs::write(&path, &pdf).expect("write");
    let text = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in [
        "VOL-2019-0001",
        "基本养老金核定",
        "保管期限：永久",
        "BOX-0001",
        "K01-L01-S1",
    ] {
        assert!(
            text.contains(expected),
            "{expected} not in the labels: {text}"
        );
    }
    let (status, body) = zh(
        &wang,
        Method::POST,
        "/api/v1/warehouse/labels",
        json!({ "codes": ["BOX-9999"] }),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // A loan: the inspector asks, the operator may not approve, the admin does,
    // the operator lends; the volume shows as lent; returned, it is in store.
    let loan = li.ok(
        Method::POST,
        "/api/v1/warehouse/loans",
        json!({ "item": "VOL-2019-0001", "borrower": "区法院 张法官", "purpose": "诉讼调卷", "due_date": "2099-01-31" }),
    );
    let id = loan["id"].as_i64().expect("loan id");
    let (status, body) = zh(
        &li,
        Method::POST,
        "/api/v1/warehouse/loans",
        json!({ "item": "BOX-0001", "borrower": "x", "purpose": "y", "due_date": "2099-01-31" }),
    );
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the box holds the requested volume: {body}"
    );
    let step = |who: &Session<'_>, step: &str| {
        who.call(
            Method::POST,
            &format!("/api/v1/warehouse/loans/{id}/steps"),
            json!({ "step": step }),
        )
    };
    assert_eq!(step(&wang, "approve").0, StatusCode::FORBIDDEN);
    assert_eq!(
        step(&wang, "lend").0,
        StatusCode::CONFLICT,
        "not approved yet"
    );
    assert_eq!(step(&chief, "approve").0, StatusCode::OK);
    let (status, lent) = step(&wang, "lend");
    assert_eq!(status, StatusCode::OK, "{lent}");
    assert_eq!(lent["state"], "lent");
    let volume = wang.get("/api/v1/warehouse/volumes/VOL-2019-0001");
    assert_eq!(volume["loan"]["state"], "lent");
    assert_eq!(volume["loan"]["borrower"], "区法院 张法官");
    // The search finds the business file with its original shown as lent.
    let shown = edge.show("B-2019");
    let number = shown["business_files"][0]["business_number"]
        .as_str()
        .expect("the first file's business number");
    let html = server
        .http
        .get(server.url(&format!("/search?q={number}")))
        .header("cookie", format!("dangan_session={}", wang.token))
        .send()
        .expect("search")
        .text()
        .expect("html");
    assert!(
        html.contains("VOL-2019-0001"),
        "the search shows the volume"
    );
    assert_eq!(step(&wang, "return").1["state"], "returned");
    assert!(wang.get("/api/v1/warehouse/volumes/VOL-2019-0001")["loan"].is_null());
    let history = wang.get("/api/v1/warehouse/loans?filter=all&item=VOL-2019-0001");
    assert_eq!(history[0]["approved_by"], "chief");
    assert_eq!(history[0]["lent_by"], "wang");
    assert_eq!(history[0]["returned_to"], "wang");

    // Every change above is one event of the warehouse feed, waiting for
    // the hub: 9 locations, 3 shelvings, 1 volume, 2 files bound, 4 loan
    // steps; refusals add nothing.
    let feed = wang.get("/api/v1/warehouse/feed");
    assert_eq!(feed["events"], 19, "{feed}");
    assert_eq!(feed["acked"], 0);
}

#[test]
fn the_keyboard_wedge_shelves_and_counts_boxes_in_a_real_browser() {
    let edge = Edge::new();
    fast_passwords(&edge);
    add_admin(&edge);
    let server = Server::start(&edge);
    let [chief, wang, _li] = staff(&server);
    set_up_room(&chief);
    for code in ["BOX-0001", "BOX-0002", "BOX-0003"] {
        wang.ok(
            Method::POST,
            "/api/v1/warehouse/locations",
            json!({ "code": code, "kind": "box", "name": code }),
        );
    }
    wang.ok(
        Method::POST,
        "/api/v1/warehouse/volumes",
        json!({ "code": "VOL-0001", "title": "2019年度 第1卷" }),
    );
    // BOX-0003 is on S3; the browser shelves BOX-0001 and BOX-0002 and puts
    // VOL-0001 into BOX-0001.
    wang.ok(
        Method::POST,
        "/api/v1/warehouse/shelvings",
        json!({ "box": "BOX-0003", "shelf": "K01-L01-J1-S3" }),
    );
    let shots = dangan_testkit::browser::screenshots("warehouse");
    let result = dangan_testkit::browser::run(
        "warehouse.mjs",
        &server.base,
        &shots,
        &[("DANGAN_OPERATOR", "wang:wang-password".to_owned())],
    )
    .expect("the browser scenario");
    // What the browser did is what the API says now.
    for (code, shelf) in [("BOX-0001", "K01-L01-S1"), ("BOX-0002", "K01-L01-S1")] {
        let detail = wang.get(&format!("/api/v1/warehouse/locations/{code}"));
        assert_eq!(detail["location"]["parent"], shelf, "{code}");
    }
    let check = result["values"]["check"]
        .as_i64()
        .expect("the check's number");
    let report = wang.get(&format!("/api/v1/warehouse/checks/{check}"));
    let mut found: Vec<(String, String)> = report["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or("").to_owned(),
                d["item"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("misplaced".to_owned(), "BOX-0002".to_owned()),
            ("missing".to_owned(), "BOX-0003".to_owned()),
            ("unexpected".to_owned(), "BOX-4242".to_owned()),
        ]
    );
    let shot = shots.join("shelving.png");
    assert!(
        std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "screenshot {} is missing",
        shot.display()
    );
}
