//! The JSON API of `dangan-edge serve`, over real HTTP to the real binary:
//! the whole flow from the first page to an accepted batch through the API
//! only (the first admin is the one thing made with the CLI), and the
//! API's refusals.

use crate::common::Edge;
use crate::common::server::{Server, Session, add_admin, expect_ok, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The error code of a JSON error answer, after checking the status.
fn error_code((status, body): (StatusCode, Value), expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["code"].as_str().expect("code").to_owned()
}

fn person_id(digits: &str) -> String {
    let check = dangan_shared::PersonId::check_character(digits).expect("17 digits");
    format!("{digits}{check}")
}

fn exceptions(session: &Session<'_>, batch: &str) -> Vec<Value> {
    session
        .get(&format!("/api/v1/batches/{batch}/exceptions"))
        .as_array()
        .expect("exceptions")
        .clone()
}

#[test]
fn a_batch_goes_from_its_first_page_to_accepted_through_the_api_only() {
    use reqwest::Method;
    let edge = Edge::new();
    add_admin(&edge);
    let server = Server::start(&edge);

    // Nothing without a session; a wrong password is refused.
    assert_eq!(
        error_code(
            send(server.http.get(server.url("/api/v1/batches"))),
            StatusCode::UNAUTHORIZED
        ),
        "unauthorised"
    );
    let (status, _) = send(
        server
            .http
            .post(server.url("/api/v1/session"))
            .json(&json!({ "username": "chief", "password": "wrong-password" })),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The admin makes an operator and an inspector.
    let chief = Session {
        server: &server,
        token: server.login("chief", "chief-password"),
    };
    for (name, role) in [("wang", "operator"), ("li", "inspector")] {
        let (status, body) = chief.call(
            Method::POST,
            "/api/v1/users",
            json!({ "username": name, "role": role, "password": format!("{name}-password") }),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let wang = Session {
        server: &server,
        token: server.login("wang", "wang-password"),
    };
    let li = Session {
        server: &server,
        token: server.login("li", "li-password"),
    };
    assert_eq!(wang.get("/api/v1/session")["role"], "operator");
    // An operator may not add users.
    assert_eq!(
        error_code(
            wang.call(
                Method::POST,
                "/api/v1/users",
                json!({ "username": "x", "role": "admin", "password": "whatever-1" })
            ),
            StatusCode::FORBIDDEN
        ),
        "forbidden"
    );

    // The operator opens a batch and uploads the scanner's files.
    let (status, body) = wang.call(
        Method::POST,
        "/api/v1/batches",
        json!({ "name": "B1", "business_type": "C01" }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let folders =
        dangan_testkit::sets::write_district(&edge.inputs("scans"), 1, 12).expect("pages");
    let mut files: Vec<_> = std::fs::read_dir(&folders[0])
        .expect("scans")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let (status, body) = send(
            wang.request(
                Method::POST,
                &format!("/api/v1/batches/B1/pages?filename={name}"),
            )
            .body(std::fs::read(file).expect("read page")),
        );
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    // The same file sent again (a retried upload) is not a second page.
    let first = files[0].file_name().and_then(|n| n.to_str()).expect("name");
    let again = expect_ok(
        send(
            wang.request(
                Method::POST,
                &format!("/api/v1/batches/B1/pages?filename={first}"),
            )
            .body(std::fs::read(&files[0]).expect("read page")),
        ),
        "re-upload",
    );
    assert_eq!(again["pages"], 0, "{again}");
    let detail = wang.get("/api/v1/batches/B1");
    assert_eq!(detail["counts"]["pages"], 12, "{detail}");
    let pages = detail["business_files"].as_array().expect("files");
    assert!(pages.len() >= 3, "{detail}");
    for file in pages {
        for page in file["pages"].as_array().expect("pages") {
            assert_eq!(page["operator"], "wang");
        }
    }

    // Every file lacks its metadata and its document checklist (C01).
    let open = exceptions(&wang, "B1");
    let codes = |list: &[Value], code: &str| list.iter().filter(|e| e["code"] == code).count();
    assert_eq!(codes(&open, "missing_metadata"), pages.len(), "{open:?}");
    assert_eq!(codes(&open, "missing_document"), pages.len(), "{open:?}");

    // Grouping: split the first file, see the new file without a number,
    // join it back; reorder the second file and restore it.
    let first_file = &pages[0];
    let first_pages: Vec<i64> = first_file["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p["seq"].as_i64().expect("seq"))
        .collect();
    assert!(first_pages.len() >= 2, "{first_file}");
    let split = wang.ok(
        Method::POST,
        "/api/v1/batches/B1/grouping",
        json!({ "action": "split", "file": 1, "at_page": first_pages[1] }),
    );
    assert_eq!(split["business_files"][1]["business_number"], Value::Null);
    assert_eq!(
        codes(&exceptions(&wang, "B1"), "no_business_number"),
        1,
        "the split-off pages have no business number"
    );
    let joined = wang.ok(
        Method::POST,
        "/api/v1/batches/B1/grouping",
        json!({ "action": "join", "file": 2, "into_file": 1 }),
    );
    assert_eq!(
        joined["business_files"][0]["pages"],
        json!(first_pages),
        "{joined}"
    );
    assert_eq!(codes(&exceptions(&wang, "B1"), "no_business_number"), 0);
    let second: Vec<i64> =
        serde_json::from_value(joined["business_files"][1]["pages"].clone()).expect("pages");
    let mut reversed = second.clone();
    reversed.reverse();
    let reordered = wang.ok(
        Method::POST,
        "/api/v1/batches/B1/grouping",
        json!({ "action": "reorder", "file": 2, "pages": reversed }),
    );
    // Pages keep their numbers in reading order: the same numbers, other images.
    assert_eq!(reordered["business_files"][1]["pages"], json!(second));
    let (status, _) = wang.call(
        Method::POST,
        "/api/v1/batches/B1/grouping",
        json!({ "action": "reorder", "file": 2, "pages": [second[0]] }),
    );
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a partial order is refused"
    );
    let edits = wang.get("/api/v1/batches/B1/edits");
    let actions: Vec<&str> = edits
        .as_array()
        .expect("edits")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["split", "join", "reorder"]);
    assert!(
        edits
            .as_array()
            .expect("edits")
            .iter()
            .all(|e| e["actor"] == "wang")
    );

    // 著录: a person id with a bad checksum is refused; good metadata and
    // the checklist clear every file's exceptions.
    let mut bad = person_id("11010519491231002");
    bad.replace_range(17.., if bad.ends_with('0') { "1" } else { "0" });
    assert_eq!(
        error_code(
            wang.call(
                Method::PATCH,
                "/api/v1/batches/B1/files/1",
                json!({ "person_id": bad })
            ),
            StatusCode::BAD_REQUEST
        ),
        "invalid"
    );
    let count = wang.get("/api/v1/batches/B1/grouping")["business_files"]
        .as_array()
        .expect("files")
        .len();
    for file in 1..=count {
        let meta = wang.ok(
            Method::PATCH,
            &format!("/api/v1/batches/B1/files/{file}"),
            json!({
                "person_id": person_id(&format!("110105199001{file:02}123")),
                "person_name": format!("参保人{file}"),
                "business_date": "2025/3/4",
                "organisation": "330106001",
            }),
        );
        assert_eq!(meta["business_date"], "2025-03-04");
        // C01 keeps files 100 years from 1 January after the business date.
        assert_eq!(meta["retention"], "100y");
        assert_eq!(meta["retention_until"], "2126-01-01");
        assert_eq!(meta["metadata_source"], "manual");
        assert_eq!(meta["metadata_by"], "wang");
        let (status, body) = wang.call(
            Method::PUT,
            &format!("/api/v1/batches/B1/files/{file}/documents"),
            json!([
                { "document": "参保人员登记表", "present": true },
                { "document": "身份证复印件", "present": false }
            ]),
        );
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "absent needs a note: {body}"
        );
        wang.ok(
            Method::PUT,
            &format!("/api/v1/batches/B1/files/{file}/documents"),
            json!([
                { "document": "参保人员登记表", "present": true },
                { "document": "身份证复印件", "present": false, "note": "原件未附" }
            ]),
        );
    }
    assert_eq!(exceptions(&wang, "B1"), Vec::<Value>::new());

    // Scanned; QC by the inspector. An operator may not run QC.
    wang.ok(
        Method::POST,
        "/api/v1/batches/B1/state",
        json!({ "to": "scanned" }),
    );
    assert_eq!(
        error_code(
            wang.call(Method::POST, "/api/v1/batches/B1/qc", json!({})),
            StatusCode::FORBIDDEN
        ),
        "forbidden"
    );
    let (status, round) = li.call(Method::POST, "/api/v1/batches/B1/qc", json!({ "seed": 5 }));
    assert_eq!(status, StatusCode::CREATED, "{round}");
    let sample: Vec<u32> = serde_json::from_value(round["sample"].clone()).expect("sample");
    assert_eq!(sample.len(), 10, "C01 samples 5% with a floor of 10 pages");
    for (i, page) in sample.iter().enumerate() {
        let verdict = if i == 0 { "blur" } else { "pass" };
        li.ok(
            Method::PUT,
            &format!("/api/v1/batches/B1/qc/pages/{page}"),
            json!({ "verdict": verdict }),
        );
    }
    let outcome = li.ok(Method::POST, "/api/v1/batches/B1/qc/finish", json!({}));
    assert_eq!(outcome["state"], "rework", "{outcome}");

    // Rework: the blurred page is rescanned; its old image stays in history.
    let blurred = sample[0];
    let old_blob = wang.get("/api/v1/batches/B1")["business_files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["pages"].as_array().expect("pages").clone())
        .find(|p| p["seq"] == blurred)
        .expect("page")["blob"]
        .clone();
    let replacement = dangan_testkit::pages::encode_jpeg(
        &image::DynamicImage::ImageLuma8(dangan_testkit::pages::blank_page(200, 77)),
        90,
        200,
    );
    let (status, body) = send(
        wang.request(
            Method::PUT,
            &format!("/api/v1/batches/B1/pages/{blurred}/image?reason=blurred&filename=rescan.jpg"),
        )
        .body(replacement.clone()),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let history = wang.get(&format!("/api/v1/batches/B1/pages/{blurred}/history"));
    assert_eq!(history[0]["old_blob"], old_blob, "{history}");
    assert_eq!(history[0]["actor"], "wang");
    let image = send(wang.request(
        Method::GET,
        &format!("/api/v1/batches/B1/pages/{blurred}/image"),
    ));
    assert_eq!(image.0, StatusCode::OK);

    let round = li.ok(Method::POST, "/api/v1/batches/B1/qc", json!({ "seed": 6 }));
    assert_eq!(round["round"], 2);
    for page in round["sample"].as_array().expect("sample") {
        li.ok(
            Method::PUT,
            &format!("/api/v1/batches/B1/qc/pages/{page}"),
            json!({ "verdict": "pass" }),
        );
    }
    let outcome = li.ok(Method::POST, "/api/v1/batches/B1/qc/finish", json!({}));
    assert_eq!(outcome["state"], "accepted", "{outcome}");

    // Accepted: metadata is closed; the lifecycle names who did each step.
    assert_eq!(
        error_code(
            wang.call(
                Method::PATCH,
                "/api/v1/batches/B1/files/1",
                json!({ "person_name": "改名" })
            ),
            StatusCode::CONFLICT
        ),
        "conflict"
    );
    let events = wang.get("/api/v1/batches/B1/events");
    let steps: Vec<(String, String)> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                format!(
                    "{}→{}",
                    e["from"].as_str().unwrap_or(""),
                    e["to"].as_str().unwrap_or("")
                ),
                e["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("open→scanned", "wang"),
            ("scanned→in_qc", "li"),
            ("in_qc→rework", "li"),
            ("rework→in_qc", "li"),
            ("in_qc→accepted", "li"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let csv = send(wang.request(Method::GET, "/api/v1/batches/B1/qc/report.csv"));
    assert_eq!(csv.0, StatusCode::OK);
    let csv = csv.1.as_str().expect("csv text").to_owned();
    assert!(csv.starts_with("batch,round,page,verdict"), "{csv}");
    assert!(csv.contains(",blur,"));
    let listed = wang.get("/api/v1/batches");
    assert_eq!(listed[0]["state"], "accepted");
    assert_eq!(listed[0]["exceptions"], 0);

    // Logging out ends the session.
    let (status, _) = send(wang.request(Method::DELETE, "/api/v1/session"));
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(wang.request(Method::GET, "/api/v1/batches"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn bad_requests_get_a_4xx_with_a_message() {
    use reqwest::Method;
    let edge = Edge::new();
    add_admin(&edge);
    let server = Server::start(&edge);
    let chief = Session {
        server: &server,
        token: server.login("chief", "chief-password"),
    };
    // Malformed JSON, unknown fields, unknown batch, unknown route.
    let (status, body) = send(
        chief
            .request(Method::POST, "/api/v1/batches")
            .header("content-type", "application/json")
            .body("{not json"),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    assert_eq!(
        error_code(
            chief.call(
                Method::POST,
                "/api/v1/batches",
                json!({ "name": "B", "colour": 1 })
            ),
            StatusCode::BAD_REQUEST
        ),
        "invalid"
    );
    assert_eq!(
        error_code(
            send(chief.request(Method::GET, "/api/v1/batches/NOPE")),
            StatusCode::NOT_FOUND
        ),
        "not_found"
    );
    assert_eq!(
        error_code(
            send(chief.request(Method::GET, "/api/v1/nothing-here")),
            StatusCode::NOT_FOUND
        ),
        "not_found"
    );
    // A corrupt upload is quarantined, not an error: the batch records it.
    chief.ok(Method::POST, "/api/v1/batches", json!({ "name": "B" }));
    let report = expect_ok(
        send(
            chief
                .request(Method::POST, "/api/v1/batches/B/pages?filename=broken.jpg")
                .body(b"\xff\xd8\xff\xe0 not really a jpeg".to_vec()),
        ),
        "upload",
    );
    assert_eq!(report["quarantined"], 1, "{report}");
    assert_eq!(
        chief.get("/api/v1/batches/B")["quarantined"][0]["source"]
            .as_str()
            .map(|s| s.ends_with("broken.jpg")),
        Some(true)
    );
    // Illegal transitions are refused with the allowed ones named.
    let (status, body) = chief.call(
        Method::POST,
        "/api/v1/batches/B/state",
        json!({ "to": "archived" }),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("scanned")),
        "{body}"
    );
    // The override needs a reason.
    assert_eq!(
        error_code(
            chief.call(
                Method::POST,
                "/api/v1/batches/B/accept",
                json!({ "reason": " " })
            ),
            StatusCode::BAD_REQUEST
        ),
        "invalid"
    );
    // axum's own refusals answer in the same JSON shape.
    assert_eq!(
        error_code(
            send(chief.request(Method::GET, "/api/v1/batches/B/files/first")),
            StatusCode::BAD_REQUEST
        ),
        "invalid"
    );
    assert_eq!(
        error_code(
            send(chief.request(Method::DELETE, "/api/v1/batches")),
            StatusCode::METHOD_NOT_ALLOWED
        ),
        "method_not_allowed"
    );
    // The index import reports bad rows by number (here a person id whose
    // checksum fails) and keeps the good ones for files scanned later.
    let good = person_id("11010519491231002");
    let mut bad = good.clone();
    bad.replace_range(17.., if good.ends_with('0') { "1" } else { "0" });
    let csv = format!("业务流水号,社会保障号码,姓名\nYW-1,{good},张三\nYW-2,{bad},李四\n");
    let report = expect_ok(
        send(
            chief
                .request(Method::POST, "/api/v1/index/imports")
                .header("content-type", "text/csv")
                .body(csv),
        ),
        "index import",
    );
    assert_eq!(report["rows"], 2, "{report}");
    assert_eq!(report["unmatched"], 1, "{report}");
    assert_eq!(report["rejected"][0]["row"], 3, "{report}");
    // The OpenAPI document is served to anyone.
    let (status, document) = send(server.http.get(server.url("/api/v1/openapi.json")));
    assert_eq!(status, StatusCode::OK);
    assert!(document["paths"]["/api/v1/batches"].is_object());
}
