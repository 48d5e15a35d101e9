//! The edge's web UI: its cookie and CSRF rules over real HTTP, and the
//! whole archive-room flow in a real browser (headless Debian Chromium
//! driven by playwright-core from `tests/browser/`), against the real
//! `dangan-edge serve`.

use std::path::Path;

use crate::common::Edge;
use crate::common::server::{Server, Session, add_admin, expect_ok, send};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::json;

/// Cheap password hashes: these tests log in many times.
fn fast_passwords(edge: &Edge) {
    edge.write_config("[users]\nmemory_kib = 8\niterations = 1\n");
}

/// The admin makes an operator `wang` and an inspector `li`.
fn add_staff(server: &Server) {
    let chief = Session {
        server,
        token: server.login("chief", "chief-password"),
    };
    for (name, role) in [("wang", "operator"), ("li", "inspector")] {
        let (status, body) = chief.call(
            reqwest::Method::POST,
            "/api/v1/users",
            json!({ "username": name, "role": role, "password": format!("{name}-password") }),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// A browser-like client: keeps no cookies of its own and follows no
/// redirects, so each answer can be looked at.
fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in through the login form; the session cookie's `Set-Cookie` line.
fn form_login(server: &Server, http: &Client, user: &str) -> String {
    let response = http
        .post(server.url("/login"))
        .form(&[
            ("username", user),
            ("password", &format!("{user}-password")),
            ("next", "/"),
        ])
        .send()
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("cookie").to_owned())
        .find(|c| c.starts_with("dangan_session="))
        .expect("session cookie")
}

/// The CSRF token a page carries in its `<meta name="csrf-token">`.
fn page_csrf(server: &Server, http: &Client, cookie: &str) -> String {
    let html = http
        .get(server.url("/"))
        .header("cookie", cookie)
        .send()
        .expect("batch list")
        .text()
        .expect("html");
    let marker = "name=\"csrf-token\" content=\"";
    let at = html.find(marker).expect("csrf meta") + marker.len();
    html[at..at + 32].to_owned()
}

#[test]
fn browser_sessions_need_the_csrf_token_and_same_site_requests() {
    let edge = Edge::new();
    fast_passwords(&edge);
    add_admin(&edge);
    let server = Server::start(&edge);
    add_staff(&server);
    let http = plain_client();

    // Pages need a session: the login page, and back to where one was.
    let response = http.get(server.url("/batches/x?y=1")).send().expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/login?next=%2Fbatches%2Fx%3Fy%3D1"
    );
    // A wrong password goes back to the form with the error shown.
    let response = http
        .post(server.url("/login"))
        .form(&[
            ("username", "wang"),
            ("password", "nope-nope"),
            ("next", "/"),
        ])
        .send()
        .expect("login");
    assert!(
        response.headers()["location"]
            .to_str()
            .expect("location")
            .contains("error=1")
    );
    // A login form cannot send the user to another site afterwards.
    let response = http
        .post(server.url("/login"))
        .form(&[
            ("username", "wang"),
            ("password", "wang-password"),
            ("next", "//evil.example/"),
        ])
        .send()
        .expect("login");
    assert_eq!(response.headers()["location"], "/");

    let set_cookie = form_login(&server, &http, "wang");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP: not Secure ({set_cookie})"
    );
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let csrf = page_csrf(&server, &http, &cookie);

    // The cookie alone does not let a JSON call change anything...
    let open = |headers: &[(&str, &str)], name: &str| {
        let mut request = http
            .post(server.url("/api/v1/batches"))
            .header("cookie", &cookie)
            .json(&json!({ "name": name }));
        for (key, value) in headers {
            request = request.header(*key, *value);
        }
        send(request)
    };
    let (status, body) = open(&[], "no-token");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "csrf");
    let (status, _) = open(
        &[("x-csrf-token", "0123456789abcdef0123456789abcdef")],
        "wrong",
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ...the session's token does, unless the request comes from another site.
    let (status, body) = open(&[("x-csrf-token", &csrf)], "with-token");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = open(
        &[("x-csrf-token", &csrf), ("origin", "http://evil.example")],
        "cross-site",
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Scripts with a bearer token need no CSRF token.
    let wang = Session {
        server: &server,
        token: server.login("wang", "wang-password"),
    };
    expect_ok(
        wang.call(
            reqwest::Method::POST,
            "/api/v1/batches",
            json!({ "name": "script" }),
        ),
        "bearer",
    );

    // Forms carry the token as a field.
    let form = |fields: &[(&str, &str)]| {
        http.post(server.url("/batches"))
            .header("cookie", &cookie)
            .form(fields)
            .send()
            .expect("form")
    };
    let refused = form(&[("name", "form-without")]);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().expect("html").contains("请求被拒绝"));
    let made = form(&[("name", "form-with"), ("csrf", &csrf)]);
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let names: Vec<String> = wang
        .get("/api/v1/batches")
        .as_array()
        .expect("batches")
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["with-token", "script", "form-with"]);

    // Logging out ends the session: the cookie no longer opens pages.
    let out = http
        .post(server.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = http
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .expect("get");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
}

#[test]
fn cookies_are_secure_when_served_over_https() {
    let edge = Edge::new();
    fast_passwords(&edge);
    add_admin(&edge);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../central-hub/tests/fixtures");
    let cert = fixtures.join("hub.pem");
    let key = fixtures.join("hub.key.pem");
    let server = Server::start_with(
        &edge,
        &[
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
        ],
        Some(&fixtures.join("ca.pem")),
    );
    assert!(server.base.starts_with("https://"));
    let response = server
        .http
        .post(server.url("/api/v1/session"))
        .json(&json!({ "username": "chief", "password": "chief-password" }))
        .send()
        .expect("login over HTTPS");
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // The language cookie too.
    let pem = std::fs::read(fixtures.join("ca.pem")).expect("CA");
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"))
        .build()
        .expect("client");
    let lang = http
        .post(server.url("/lang"))
        .form(&[("lang", "en"), ("next", "/login")])
        .send()
        .expect("lang");
    assert_eq!(lang.status(), StatusCode::SEE_OTHER);
    let cookie = lang.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        cookie.starts_with("dangan_lang=en") && cookie.contains("; Secure"),
        "{cookie}"
    );
}

/// How many extra batches the batch list shows during the browser test.
const LISTED_BATCHES: usize = 1000;

#[test]
fn operators_and_inspectors_take_batches_to_accepted_in_a_real_browser() {
    let edge = Edge::new();
    fast_passwords(&edge);
    add_admin(&edge);
    // Three batches of twelve scanned pages (with business-number barcodes):
    // one to pass QC, one to fail, one (个人参保登记) to fix in the queue.
    // A fourth folder of four pages is uploaded through the browser.
    let folders =
        dangan_testkit::sets::write_district(&edge.inputs("scans"), 4, 12).expect("pages");
    let uploads = edge.inputs("uploads");
    for page in 1..=4 {
        let name = format!("{page:04}.jpg");
        std::fs::copy(folders[3].join(&name), uploads.join(&name)).expect("upload file");
    }
    // New scans of the second batch's pages, for its rework: the same
    // pages, encoded again (other bytes, the same barcodes).
    let rescans = edge.inputs("rescans");
    for entry in std::fs::read_dir(&folders[1]).expect("scans") {
        let path = entry.expect("entry").path();
        let image = image::open(&path).expect("page");
        let jpeg = dangan_testkit::pages::encode_jpeg(&image, 93, 200);
        std::fs::write(rescans.join(path.file_name().expect("name")), jpeg).expect("rescan");
    }
    let batches = json!({
        "pass": "2026-11 甲",
        "fail": "2026-11 乙",
        "exceptions": "2026-11 丙",
    });
    let server = Server::start(&edge);
    add_staff(&server);
    let chief = Session {
        server: &server,
        token: server.login("chief", "chief-password"),
    };
    // A realistic archive room: a thousand older batches, then the three
    // scanned today (ingested by the CLI while the server runs).
    for i in 0..LISTED_BATCHES {
        expect_ok(
            chief.call(
                reqwest::Method::POST,
                "/api/v1/batches",
                json!({ "name": format!("2025-{:04}", i) }),
            ),
            "batch",
        );
    }

    for (key, folder) in ["pass", "fail", "exceptions"].iter().zip(&folders) {
        let name = batches[key].as_str().expect("name");
        let folder = folder.to_str().expect("path");
        let mut args = vec!["ingest", "--batch", name, folder];
        if *key == "exceptions" {
            args.extend(["--business-type", "C01"]);
        }
        edge.json(&args);
    }
    // The C01 batch's files arrive complete from the business system, so
    // the only exception is the one the operator makes by splitting.
    let exceptions_batch = batches["exceptions"].as_str().expect("name");
    let base = format!("/api/v1/batches/{}", urlencode(exceptions_batch));
    let grouping = chief.get(&format!("{base}/grouping"));
    for (i, file) in grouping["business_files"]
        .as_array()
        .expect("files")
        .iter()
        .enumerate()
    {
        let seq = file["seq"].as_i64().expect("seq");
        let id = format!("3301061985010{:04}", 1000 + i);
        let check = dangan_shared::PersonId::check_character(&id).expect("17 digits");
        expect_ok(
            chief.call(
                reqwest::Method::PATCH,
                &format!("{base}/files/{seq}"),
                json!({
                    "person_id": format!("{id}{check}"),
                    "person_name": format!("参保人{i}"),
                    "business_date": "2026-11-02",
                    "organisation": "330106",
                }),
            ),
            "metadata",
        );
        expect_ok(
            chief.call(
                reqwest::Method::PUT,
                &format!("{base}/files/{seq}/documents"),
                json!([
                    { "document": "参保人员登记表", "present": true },
                    { "document": "身份证复印件", "present": true },
                ]),
            ),
            "documents",
        );
    }
    assert_eq!(
        chief
            .get(&format!("{base}/exceptions"))
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let shots = dangan_testkit::browser::screenshots("edge");
    let result = dangan_testkit::browser::run(
        "edge.mjs",
        &server.base,
        &shots,
        &[
            ("DANGAN_OPERATOR", "wang:wang-password".to_owned()),
            ("DANGAN_INSPECTOR", "li:li-password".to_owned()),
            ("DANGAN_BATCHES", batches.to_string()),
            ("DANGAN_UPLOADS", uploads.display().to_string()),
            ("DANGAN_RESCANS", rescans.display().to_string()),
        ],
    )
    .expect("the browser scenario");
    // What the operator did in the browser is in the batch's edit log,
    // under their name.
    let edits = chief.get(&format!("{base}/edits"));
    let by_wang: Vec<&str> = edits
        .as_array()
        .expect("edits")
        .iter()
        .filter(|e| e["actor"] == "wang")
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    for action in ["split", "reorder", "assign", "metadata", "documents"] {
        assert!(
            by_wang.contains(&action),
            "{action} missing from {by_wang:?}"
        );
    }
    // The timings are kept beside the screenshots and printed.
    let timings = serde_json::to_string_pretty(&result["timings"]).expect("json");
    std::fs::write(shots.join("timings.json"), &timings).expect("write timings");
    println!("edge UI timings: {timings}");
    for shot in ["qc-screen", "exception-queue", "batch-page", "batch-list"] {
        let path = shots.join(format!("{shot}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "screenshot {} is missing or empty",
            path.display()
        );
    }
    assert!(
        result["timings"]["qc_key_to_next_page"]["count"]
            .as_u64()
            .is_some_and(|n| n >= 10),
        "{timings}"
    );
    assert_eq!(
        result["timings"]["batch_list"]["total"].as_u64(),
        Some(LISTED_BATCHES as u64 + 3)
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
