//! Street offices' live uploads over tus 1.0, with raw HTTP requests
//! against a real server: discovery, creation (with and without a first
//! body), offsets, the sha256 checksum (460 keeps the offset), pages
//! landing in the live business file as content-addressed blobs, refusal of
//! what is not an image, termination, expiry, crash recovery, and who may
//! upload into which business file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use base64::Engine;
use dangan_hub::users::{self, Role};
use dangan_shared::BlobId;
use dangan_shared::password::PasswordCost;
use image::ImageEncoder;
use reqwest::{Method, StatusCode};
use sha2::Digest;

use crate::backend::{Hub, Served, hub, hub_with_config};

const PASSWORD: &str = "a-good-password";

/// 西湖区 with its street office 西溪街道, 滨江区 with 长河街道; a clerk in
/// each street office and a reviewer in 西湖区.
fn people(hub: &Hub) {
    let mut conn = hub.backend.db().get().unwrap();
    for (code, name, parent) in [
        ("330106", "西湖区", "330100"),
        ("330106001", "西溪街道", "330106"),
        ("330108", "滨江区", "330100"),
        ("330108001", "长河街道", "330108"),
    ] {
        dangan_hub::orgs::add(&mut conn, code, name, Some(parent)).unwrap();
    }
    let cheap = PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };
    for (name, role, org) in [
        ("xi", Role::Clerk, "330106001"),
        ("chang", Role::Clerk, "330108001"),
        ("zhou", Role::Reviewer, "330106"),
    ] {
        users::add(&mut conn, name, None, role, org, PASSWORD, cheap).unwrap();
    }
}

fn jpeg(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let page = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([shade.wrapping_add(((x / 7 + y / 5) % 64) as u8)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(page.as_raw(), width, height, image::ExtendedColorType::L8)
        .unwrap();
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let page = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([((x * 3 + y) % 256) as u8])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(page.as_raw(), width, height, image::ExtendedColorType::L8)
        .unwrap();
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn metadata(number: &str, filename: &str) -> String {
    format!(
        "business_number {},filename {}",
        b64(number.as_bytes()),
        b64(filename.as_bytes())
    )
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256 {}", b64(&sha2::Sha256::digest(bytes)))
}

/// A logged-in client of one user against the served hub.
struct Clerk {
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn offset(&self) -> u64 {
        self.header("upload-offset").unwrap().parse().unwrap()
    }
}

impl Clerk {
    async fn login(served: &Served, name: &str) -> Clerk {
        let http = reqwest::Client::new();
        let base = format!("http://{}", served.addr);
        let answer: serde_json::Value = http
            .post(format!("{base}/api/v1/session"))
            .json(&serde_json::json!({ "username": name, "password": PASSWORD }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["token"].as_str().unwrap().to_owned();
        Clerk { http, base, token }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Tus-Resumable", "1.0.0");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/offset+octet-stream")
                .body(body);
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// Creates an upload of `length` bytes for `number`; returns its path.
    async fn create(&self, number: &str, length: usize) -> (Answer, String) {
        let answer = self
            .send(
                Method::POST,
                "/api/v1/uploads",
                &[
                    ("Upload-Length", length.to_string()),
                    ("Upload-Metadata", metadata(number, "第1页.jpg")),
                ],
                None,
            )
            .await;
        let location = answer.header("location").unwrap_or_default().to_owned();
        (answer, location)
    }

    async fn patch(
        &self,
        path: &str,
        offset: usize,
        bytes: &[u8],
        checksum: Option<String>,
    ) -> Answer {
        let mut headers = vec![("Upload-Offset", offset.to_string())];
        if let Some(checksum) = checksum {
            headers.push(("Upload-Checksum", checksum));
        }
        self.send(Method::PATCH, path, &headers, Some(bytes.to_vec()))
            .await
    }

    async fn head(&self, path: &str) -> Answer {
        self.send(Method::HEAD, path, &[], None).await
    }
}

fn live_file(hub: &Hub, number: &str) -> dangan_hub::live::LiveFile {
    let conn = hub.backend.db().get().unwrap();
    dangan_hub::live::get(&conn, number).unwrap().unwrap()
}

fn audit_actions(hub: &Hub, action: &str) -> Vec<(String, String, String)> {
    let conn = hub.backend.db().get().unwrap();
    let mut statement = conn
        .prepare("SELECT actor, target, result FROM audit_log WHERE action = ?1 ORDER BY seq")
        .unwrap();
    statement
        .query_map([action], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn tus_uploads_become_pages_of_the_live_business_file() {
    let hub = hub();
    people(&hub);
    let served = Served::start(&hub).await;
    let xi = Clerk::login(&served, "xi").await;

    // Discovery, without credentials.
    let options = reqwest::Client::new()
        .request(
            Method::OPTIONS,
            format!("http://{}/api/v1/uploads", served.addr),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    let h = |name: &str| options.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(h("tus-version"), "1.0.0");
    assert_eq!(h("tus-resumable"), "1.0.0");
    for extension in [
        "creation",
        "creation-with-upload",
        "expiration",
        "termination",
        "checksum",
    ] {
        assert!(h("tus-extension").split(',').any(|e| e == extension));
    }
    assert_eq!(h("tus-checksum-algorithm"), "sha256");
    assert_eq!(h("tus-max-size"), (100 * 1024 * 1024).to_string());

    // Another protocol version is refused with the one spoken.
    let old = reqwest::Client::new()
        .post(format!("http://{}/api/v1/uploads", served.addr))
        .bearer_auth(&xi.token)
        .header("Tus-Resumable", "0.2.2")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(old.headers()["tus-version"], "1.0.0");

    // Page 1 in two halves, the second first with a wrong checksum.
    let page1 = jpeg(640, 900, 10);
    let half = page1.len() / 2;
    let (created, upload) = xi.create("YL2026120001", page1.len()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(upload.starts_with("/api/v1/uploads/"), "{upload}");
    assert!(created.header("upload-expires").is_some());
    let head = xi.head(&upload).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.offset(), 0);
    assert_eq!(
        head.header("upload-length"),
        Some(page1.len().to_string().as_str())
    );
    assert_eq!(head.header("cache-control"), Some("no-store"));
    assert!(
        head.header("upload-metadata")
            .unwrap()
            .contains("business_number")
    );

    let first = xi
        .patch(&upload, 0, &page1[..half], Some(sha256(&page1[..half])))
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);
    assert_eq!(first.offset(), half as u64);
    assert_eq!(first.header("tus-resumable"), Some("1.0.0"));

    let stale = xi.patch(&upload, 0, &page1[..half], None).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.offset(), half as u64, "the hub says where to resume");

    let wrong = xi
        .patch(
            &upload,
            half,
            &page1[half..],
            Some(sha256(b"something else")),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 460, "{}", wrong.body);
    assert_eq!(
        xi.head(&upload).await.offset(),
        half as u64,
        "offset unchanged"
    );
    assert!(live_file(&hub, "YL2026120001").pages.is_empty());

    let rest = xi
        .patch(&upload, half, &page1[half..], Some(sha256(&page1[half..])))
        .await;
    assert_eq!(rest.status, StatusCode::NO_CONTENT, "{}", rest.body);
    assert_eq!(rest.offset(), page1.len() as u64);
    // Sent again after it finished: nothing changes.
    let again = xi.patch(&upload, page1.len(), &[], None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);

    // Page 2 in the creation request itself (creation-with-upload).
    let page2 = png(500, 700);
    let with_body = xi
        .send(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("Upload-Length", page2.len().to_string()),
                ("Upload-Metadata", metadata("YL2026120001", "第2页.png")),
                ("Upload-Checksum", sha256(&page2)),
            ],
            Some(page2.clone()),
        )
        .await;
    assert_eq!(with_body.status, StatusCode::CREATED, "{}", with_body.body);
    assert_eq!(with_body.offset(), page2.len() as u64);

    // Both pages are in the live business file, in order, as blobs named
    // by their BLAKE3 hash, of the clerk's street office.
    let file = live_file(&hub, "YL2026120001");
    assert_eq!(file.organisation, "330106001");
    assert_eq!(file.district, "330106");
    assert_eq!(file.state, "open");
    let pages: Vec<(String, String, u32, Option<String>)> = file
        .pages
        .iter()
        .map(|p| {
            (
                p.blob.clone(),
                p.format.clone(),
                p.width,
                p.filename.clone(),
            )
        })
        .collect();
    assert_eq!(
        pages,
        vec![
            (
                BlobId::of(&page1).to_hex(),
                "jpeg".to_owned(),
                640,
                Some("第1页.jpg".to_owned())
            ),
            (
                BlobId::of(&page2).to_hex(),
                "png".to_owned(),
                500,
                Some("第2页.png".to_owned())
            ),
        ]
    );
    for page in [&page1, &page2] {
        let stored = hub
            .backend
            .blob_store()
            .read(&BlobId::of(page))
            .await
            .unwrap();
        assert_eq!(stored.as_ref(), page.as_slice());
    }
    assert_eq!(audit_actions(&hub, "live.page.add").len(), 2);

    // What is not an image is refused with the reason, and kept.
    let junk = b"this is not an image at all".to_vec();
    let refused = xi
        .send(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("Upload-Length", junk.len().to_string()),
                ("Upload-Metadata", metadata("YL2026120001", "notes.txt")),
            ],
            Some(junk.clone()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("not a page image"),
        "{}",
        refused.body
    );
    let kept: Vec<Vec<u8>> = std::fs::read_dir(hub.data.join("uploads/refused"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(kept, vec![junk]);
    assert_eq!(live_file(&hub, "YL2026120001").pages.len(), 2);
    let failed = audit_actions(&hub, "live.upload");
    assert_eq!(
        failed,
        vec![("xi".into(), "YL2026120001".into(), "failed".into())]
    );

    // A body running past Upload-Length is refused, the offset unchanged.
    let (_, long) = xi.create("YL2026120001", 10).await;
    let past = xi.patch(&long, 0, &[0u8; 20], None).await;
    assert_eq!(past.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(xi.head(&long).await.offset(), 0);

    // Termination: the upload and its bytes are gone.
    let page3 = jpeg(300, 400, 90);
    let (_, terminated) = xi.create("YL2026120001", page3.len()).await;
    xi.patch(&terminated, 0, &page3[..100], None).await;
    let id = terminated.rsplit('/').next().unwrap().to_owned();
    assert!(hub.data.join("uploads").join(&id).exists());
    let deleted = xi.send(Method::DELETE, &terminated, &[], None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(xi.head(&terminated).await.status, StatusCode::NOT_FOUND);
    assert!(!hub.data.join("uploads").join(&id).exists());

    // Crash recovery: every byte was recorded but the page was not (the
    // process died in between); the next HEAD finishes it.
    let page4 = jpeg(320, 480, 150);
    let (_, crashed) = xi.create("YL2026120001", page4.len()).await;
    let id = crashed.rsplit('/').next().unwrap().to_owned();
    std::fs::write(hub.data.join("uploads").join(&id), &page4).unwrap();
    hub.backend
        .db()
        .get()
        .unwrap()
        .execute("UPDATE uploads SET received = length WHERE id = ?1", [&id])
        .unwrap();
    let recovered = xi.head(&crashed).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    assert_eq!(recovered.offset(), page4.len() as u64);
    let file = live_file(&hub, "YL2026120001");
    assert_eq!(file.pages.len(), 3);
    assert_eq!(file.pages[2].blob, BlobId::of(&page4).to_hex());

    served.stop().await;
}

#[tokio::test]
async fn uploads_are_their_uploaders_and_stay_in_their_scope() {
    let hub = hub();
    people(&hub);
    let served = Served::start(&hub).await;
    let xi = Clerk::login(&served, "xi").await;
    let chang = Clerk::login(&served, "chang").await;
    let zhou = Clerk::login(&served, "zhou").await;
    let page = jpeg(200, 300, 40);

    let (created, upload) = xi.create("XC-0001", page.len()).await;
    assert_eq!(created.status, StatusCode::CREATED);

    // A clerk of another street office can neither add to 西溪街道's
    // business file nor see or touch 西溪街道's upload.
    let (refused, _) = chang.create("XC-0001", page.len()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("330106001"), "{}", refused.body);
    assert_eq!(chang.head(&upload).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        chang.patch(&upload, 0, &page, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        chang.send(Method::DELETE, &upload, &[], None).await.status,
        StatusCode::NOT_FOUND
    );
    // Nor open a business file in 西湖区's street office.
    let elsewhere = chang
        .send(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("Upload-Length", page.len().to_string()),
                (
                    "Upload-Metadata",
                    format!(
                        "business_number {},organisation {}",
                        b64(b"CH-0001"),
                        b64(b"330106001")
                    ),
                ),
            ],
            None,
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    // A reviewer does not upload at all.
    let (reviewer, _) = zhou.create("XC-0002", page.len()).await;
    assert_eq!(reviewer.status, StatusCode::FORBIDDEN);
    let denied = audit_actions(&hub, "live.upload");
    assert_eq!(
        denied,
        vec![
            ("chang".into(), "XC-0001".into(), "denied".into()),
            ("chang".into(), "CH-0001".into(), "denied".into()),
            ("zhou".into(), "XC-0002".into(), "denied".into()),
        ]
    );

    // Without credentials nothing is created.
    let anonymous = reqwest::Client::new()
        .post(format!("http://{}/api/v1/uploads", served.addr))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A malformed request says what is wrong.
    let no_number = xi
        .send(
            Method::POST,
            "/api/v1/uploads",
            &[("Upload-Length", "10".into())],
            None,
        )
        .await;
    assert_eq!(no_number.status, StatusCode::BAD_REQUEST);
    assert!(no_number.body.contains("business_number"));
    let too_big = xi
        .send(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("Upload-Length", (200u64 << 20).to_string()),
                ("Upload-Metadata", metadata("XC-0001", "big.tif")),
            ],
            None,
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    served.stop().await;
}

#[tokio::test]
async fn unfinished_uploads_expire_and_their_bytes_are_deleted() {
    let hub = hub_with_config(|text| {
        text.replace("expire_hours = 24", "expire_hours = 24\nexpire_seconds = 1")
    });
    people(&hub);
    let served = Served::start(&hub).await;
    let xi = Clerk::login(&served, "xi").await;
    let page = jpeg(200, 300, 60);
    let (_, upload) = xi.create("EX-0001", page.len()).await;
    let part = xi.patch(&upload, 0, &page[..50], None).await;
    assert_eq!(part.status, StatusCode::NO_CONTENT);
    let id = upload.rsplit('/').next().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(xi.head(&upload).await.status, StatusCode::GONE);
    assert_eq!(
        xi.patch(&upload, 50, &page[50..], None).await.status,
        StatusCode::GONE
    );
    hub.backend.maintain().await.unwrap();
    assert_eq!(xi.head(&upload).await.status, StatusCode::NOT_FOUND);
    assert!(!hub.data.join("uploads").join(&id).exists());
    served.stop().await;
}

/// A client with a business system's API token.
fn system(served: &Served, token: String) -> Clerk {
    Clerk {
        http: reqwest::Client::new(),
        base: format!("http://{}", served.addr),
        token,
    }
}

impl Clerk {
    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or_default())
    }

    /// Uploads a whole page in the creation request.
    async fn upload(&self, number: &str, bytes: &[u8]) -> Answer {
        self.send(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("Upload-Length", bytes.len().to_string()),
                ("Upload-Metadata", metadata(number, "page.jpg")),
            ],
            Some(bytes.to_vec()),
        )
        .await
    }
}

#[tokio::test]
async fn business_systems_register_clerks_hand_in_and_reviewers_decide() {
    let hub = hub();
    people(&hub);
    let token = {
        let mut conn = hub.backend.db().get().unwrap();
        users::add(
            &mut conn,
            "bin",
            None,
            Role::Reviewer,
            "330108",
            PASSWORD,
            PasswordCost {
                memory_kib: 8,
                iterations: 1,
            },
        )
        .unwrap();
        users::create_token(&mut conn, "shebao", Role::Clerk, "330106001", None, "admin")
            .unwrap()
            .0
    };
    let served = Served::start(&hub).await;
    let shebao = system(&served, token);
    let xi = Clerk::login(&served, "xi").await;
    let zhou = Clerk::login(&served, "zhou").await;
    let bin = Clerk::login(&served, "bin").await;
    let file = "/api/v1/live/YL2026120077";

    // The business system registers the transaction, then completes it.
    let (status, registered) = shebao
        .json(
            Method::PUT,
            file,
            Some(serde_json::json!({ "person_name": "张三丰", "business_type": "D01" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["organisation"], "330106001");
    assert_eq!(registered["state"], "open");
    let (status, updated) = shebao
        .json(
            Method::PUT,
            file,
            Some(serde_json::json!({ "person_id": "11010519491231002x", "date": "2026-12-01" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["person_id"], "11010519491231002X");
    assert_eq!(updated["person_name"], "张三丰");
    for bad in [
        serde_json::json!({ "person_id": "110105194912310021" }),
        serde_json::json!({ "date": "2026-13-01" }),
        serde_json::json!({ "business_type": "ZZ99" }),
        serde_json::json!({ "colour": "red" }),
    ] {
        let (status, answer) = shebao.json(Method::PUT, file, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {answer}");
    }

    // The clerk scans three pages in; the pages come with their links.
    for shade in [20, 80, 140] {
        let answer = xi.upload("YL2026120077", &jpeg(300, 420, shade)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let (_, shown) = shebao.json(Method::GET, file, None).await;
    let pages = shown["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    let ids: Vec<i64> = pages.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    let thumbnail = shebao
        .http
        .get(format!(
            "{}{}",
            shebao.base,
            pages[0]["thumbnail"].as_str().unwrap()
        ))
        .bearer_auth(&shebao.token)
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.status(), StatusCode::OK);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let original = shebao
        .http
        .get(format!(
            "{}{}",
            shebao.base,
            pages[1]["image"].as_str().unwrap()
        ))
        .bearer_auth(&shebao.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        original.bytes().await.unwrap().as_ref(),
        jpeg(300, 420, 80).as_slice()
    );

    // Before handing in: the last page first, the middle one removed.
    let (status, reordered) = xi
        .json(
            Method::PUT,
            &format!("{file}/order"),
            Some(serde_json::json!({ "pages": [ids[2], ids[0], ids[1]] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reordered}");
    let (status, _) = xi
        .json(
            Method::PUT,
            &format!("{file}/order"),
            Some(serde_json::json!({ "pages": [ids[0]] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "every page once");
    let (status, _) = xi
        .json(Method::DELETE, &format!("{file}/pages/{}", ids[1]), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let order = |file: &serde_json::Value| -> Vec<(i64, i64)> {
        file["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["position"].as_i64().unwrap()))
            .collect()
    };
    let (_, now) = xi.json(Method::GET, file, None).await;
    assert_eq!(order(&now), vec![(ids[2], 1), (ids[0], 2)]);

    // Handed in; a clerk does not approve; a reviewer of another district
    // does not even see it.
    let (status, submitted) = xi.json(Method::POST, &format!("{file}/submit"), None).await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    assert_eq!(submitted["state"], "submitted");
    let (status, _) = xi
        .json(Method::POST, &format!("{file}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        bin.json(Method::GET, file, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bin.json(Method::POST, &format!("{file}/approve"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let late = xi.upload("YL2026120077", &jpeg(300, 420, 200)).await;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "no pages while in review"
    );

    // The reviewer's queue; sent back with a reason the clerk sees.
    let (_, queue) = zhou
        .json(Method::GET, "/api/v1/live?state=submitted", None)
        .await;
    let numbers: Vec<&str> = queue["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["business_number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec!["YL2026120077"]);
    assert_eq!(queue["files"][0]["organisation_name"], "西溪街道");
    assert_eq!(queue["files"][0]["pages"], 2);
    let (_, empty) = bin
        .json(Method::GET, "/api/v1/live?state=submitted", None)
        .await;
    assert_eq!(empty["files"], serde_json::json!([]));
    let (status, _) = zhou
        .json(
            Method::POST,
            &format!("{file}/return"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a reason is needed");
    let (status, returned) = zhou
        .json(
            Method::POST,
            &format!("{file}/return"),
            Some(serde_json::json!({ "reason": "缺少身份证复印件反面" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{returned}");
    let (_, seen) = xi.json(Method::GET, file, None).await;
    assert_eq!(seen["state"], "returned");
    assert_eq!(seen["return_reason"], "缺少身份证复印件反面");

    // The clerk adds the missing page and hands in again; approved.
    let fixed = xi.upload("YL2026120077", &jpeg(300, 420, 230)).await;
    assert_eq!(fixed.status, StatusCode::CREATED);
    xi.json(Method::POST, &format!("{file}/submit"), None).await;
    let (status, approved) = zhou
        .json(Method::POST, &format!("{file}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["pages"].as_array().unwrap().len(), 3);
    let (status, _) = shebao
        .json(
            Method::PUT,
            file,
            Some(serde_json::json!({ "person_name": "张三" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an approved file is not changed"
    );
    let (status, _) = zhou
        .json(Method::POST, &format!("{file}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "approved once");

    // A short-lived link the business system embeds: no login, the pages
    // only, framed by the hub (and the configured origins) only; expired,
    // it opens nothing.
    let (status, link) = shebao
        .json(
            Method::POST,
            &format!("{file}/viewer-link"),
            Some(serde_json::json!({ "minutes": 10 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = format!("{}{}", shebao.base, link["url"].as_str().unwrap());
    let anonymous = reqwest::Client::new();
    let page = anonymous.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(policy, "frame-ancestors 'self'");
    assert!(page.headers().get("x-frame-options").is_none());
    let html = page.text().await.unwrap();
    assert_eq!(html.matches("<figure").count(), 3, "{html}");
    let image_path = html
        .split("src=\"")
        .nth(2)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let image = anonymous
        .get(format!("{}{image_path}", shebao.base))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), StatusCode::OK, "{image_path}");
    assert_eq!(image.headers()["content-type"], "image/jpeg");
    hub.backend
        .db()
        .get()
        .unwrap()
        .execute(
            "UPDATE viewer_links SET expires_at = '2000-01-01T00:00:00Z'",
            [],
        )
        .unwrap();
    assert_eq!(
        anonymous.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        anonymous
            .get(format!("{}{image_path}", shebao.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) = bin
        .json(
            Method::POST,
            &format!("{file}/viewer-link"),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only for files in the caller's scope"
    );
    // Another street office's business system reads nothing of 西溪街道's.
    let other = {
        let mut conn = hub.backend.db().get().unwrap();
        users::create_token(
            &mut conn,
            "changhe",
            Role::Clerk,
            "330108001",
            None,
            "admin",
        )
        .unwrap()
        .0
    };
    let other = system(&served, other);
    assert_eq!(
        other.json(Method::GET, file, None).await.0,
        StatusCode::NOT_FOUND
    );
    let pages_link = format!("{file}/pages/{}", ids[0]);
    assert_eq!(
        other.json(Method::GET, &pages_link, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = other.json(Method::GET, "/api/v1/live", None).await;
    assert_eq!(listed["files"], serde_json::json!([]));
    assert_eq!(
        other
            .json(
                Method::PUT,
                file,
                Some(serde_json::json!({ "person_name": "x" }))
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let steps: Vec<String> = {
        let conn = hub.backend.db().get().unwrap();
        let mut statement = conn
            .prepare(
                "SELECT action FROM audit_log WHERE target = 'YL2026120077'
                 AND action IN ('live.register', 'live.submit', 'live.return', 'live.approve')
                 AND result = 'ok' ORDER BY seq",
            )
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        steps,
        vec![
            "live.register",
            "live.register",
            "live.submit",
            "live.return",
            "live.submit",
            "live.approve"
        ]
    );
    served.stop().await;
}

/// A business system's webhook receiver: answers 500 to the first
/// `failures` requests, then 204; keeps every request.
struct Receiver {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        use axum::response::IntoResponse;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let log = std::sync::Arc::clone(&log);
                async move {
                    let mut log = log.lock().unwrap();
                    log.push((headers, body));
                    if log.len() <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    } else {
                        StatusCode::NO_CONTENT.into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, seen }
    }

    fn requests(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_delivered_once_each() {
    let receiver = Receiver::start(1).await;
    let url = receiver.url.clone();
    let hub = hub_with_config(move |text| text.replace("url = \"\"", &format!("url = {url:?}")));
    people(&hub);
    std::fs::write(hub.data.join("webhook.secret"), "shared-secret-1\n").unwrap();
    let served = Served::start(&hub).await;
    let xi = Clerk::login(&served, "xi").await;
    let zhou = Clerk::login(&served, "zhou").await;

    let answer = xi.upload("WH-0001", &jpeg(200, 300, 10)).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    // The first delivery fails (500); the event waits for its retry.
    let wait_for = |count: usize| {
        let receiver = &receiver;
        async move {
            for _ in 0..100 {
                if receiver.requests().len() >= count {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!(
                "the receiver saw {} requests, not {count}",
                receiver.requests().len()
            );
        }
    };
    wait_for(1).await;
    // Time passes: the retry is due now.
    hub.backend
        .db()
        .get()
        .unwrap()
        .execute(
            "UPDATE webhook_outbox SET next_at = '2000-01-01T00:00:00Z' WHERE delivered_at IS NULL",
            [],
        )
        .unwrap();
    wait_for(2).await;

    xi.json(Method::POST, "/api/v1/live/WH-0001/submit", None)
        .await;
    let (status, _) = zhou
        .json(Method::POST, "/api/v1/live/WH-0001/approve", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for(3).await;

    let requests = receiver.requests();
    let header = |i: usize, name: &str| requests[i].0[name].to_str().unwrap().to_owned();
    // The retry is the same delivery; every request is signed.
    assert_eq!(
        header(0, "x-dangan-delivery"),
        header(1, "x-dangan-delivery")
    );
    assert_eq!(requests[0].1, requests[1].1);
    for (i, (_, body)) in requests.iter().enumerate() {
        let timestamp: u64 = header(i, "x-dangan-timestamp").parse().unwrap();
        assert_eq!(
            header(i, "x-dangan-signature"),
            dangan_hub::webhooks::signature(b"shared-secret-1", timestamp, body)
        );
    }
    let events: Vec<(String, String)> = requests[1..]
        .iter()
        .map(|(_, body)| {
            let event: serde_json::Value = serde_json::from_str(body).unwrap();
            (
                event["event"].as_str().unwrap().to_owned(),
                event["business_number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("live.pages_uploaded".to_owned(), "WH-0001".to_owned()),
            ("live.accepted".to_owned(), "WH-0001".to_owned()),
        ]
    );
    // Each delivered once: nothing more arrives.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 3);
    served.stop().await;
}

#[tokio::test]
async fn the_monthly_close_archives_approved_files_once_and_refuses_while_any_waits() {
    let hub = hub();
    people(&hub);
    {
        let mut conn = hub.backend.db().get().unwrap();
        users::add(
            &mut conn,
            "guan",
            None,
            Role::ArchiveAdmin,
            "330106",
            PASSWORD,
            PasswordCost {
                memory_kib: 8,
                iterations: 1,
            },
        )
        .unwrap();
    }
    let served = Served::start(&hub).await;
    let xi = Clerk::login(&served, "xi").await;
    let zhou = Clerk::login(&served, "zhou").await;
    let guan = Clerk::login(&served, "guan").await;

    // Three transactions of 西溪街道 in November 2026: two approved, one
    // still waiting for review.
    for (number, name, shade) in [
        ("NOV-0001", "张三丰", 30),
        ("NOV-0002", "李四", 90),
        ("NOV-0003", "王五", 150),
    ] {
        xi.json(
            Method::PUT,
            &format!("/api/v1/live/{number}"),
            Some(serde_json::json!({ "person_name": name, "business_type": "D01", "date": "2026-11-20" })),
        )
        .await;
        assert_eq!(
            xi.upload(number, &jpeg(300, 400, shade)).await.status,
            StatusCode::CREATED
        );
        assert_eq!(
            xi.upload(number, &jpeg(300, 400, shade + 40)).await.status,
            StatusCode::CREATED
        );
        xi.json(Method::POST, &format!("/api/v1/live/{number}/submit"), None)
            .await;
    }
    for number in ["NOV-0001", "NOV-0002"] {
        let (status, _) = zhou
            .json(
                Method::POST,
                &format!("/api/v1/live/{number}/approve"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // They were opened in November (Asia/Shanghai).
    hub.backend
        .db()
        .get()
        .unwrap()
        .execute(
            "UPDATE live_files SET created_at = '2026-11-20T02:00:00Z'",
            [],
        )
        .unwrap();

    // A clerk may not close; a month that has not ended cannot be closed.
    let (status, _) = xi
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2026-11" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = guan
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2099-01" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Refused while NOV-0003 waits, listing it.
    let (status, refused) = guan
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2026-11" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["unapproved"][0]["business_number"], "NOV-0003");
    assert_eq!(refused["unapproved"][0]["state"], "submitted");
    let (_, nothing) = zhou
        .json(Method::GET, "/api/v1/search?name=三丰", None)
        .await;
    assert_eq!(nothing["total"], 0, "nothing archived by a refused close");

    // Forced with a reason: the two approved files are archived, one batch.
    let (status, report) = guan
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2026-11", "force": "NOV-0003 待补材料，下月处理" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["batches"], serde_json::json!(["LIVE-2026-11"]));
    assert_eq!(report["archived_files"], 2);
    assert_eq!(report["archived_pages"], 4);
    assert_eq!(report["forced"], "NOV-0003 待补材料，下月处理");
    assert_eq!(report["excluded"][0]["business_number"], "NOV-0003");
    assert_eq!(report["by_organisation"][0]["key"], "330106001");
    assert_eq!(report["by_organisation"][0]["name"], "西溪街道");
    assert_eq!(report["by_organisation"][0]["files"], 2);
    assert_eq!(report["by_business_type"][0]["key"], "D01");
    assert_eq!(report["by_business_type"][0]["name"], "基本养老金核定");

    // The archive proper now holds them: found by search, with their
    // pages, as a batch of 西湖区 with a signed receipt.
    let (_, found) = zhou
        .json(Method::GET, "/api/v1/search?name=三丰", None)
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let hit = &found["hits"][0];
    assert_eq!(hit["business_number"], "NOV-0001");
    assert_eq!(hit["batch"], "LIVE-2026-11");
    assert_eq!(hit["district"], "330106");
    assert_eq!(hit["pages"], 2);
    let (_, file) = zhou
        .json(Method::GET, &format!("/api/v1/files/{}", hit["id"]), None)
        .await;
    assert_eq!(file["category"], "payment");
    assert_eq!(file["retention"], "permanent");
    let (_, live) = xi.json(Method::GET, "/api/v1/live/NOV-0001", None).await;
    assert_eq!(live["state"], "archived");
    {
        let conn = hub.backend.db().get().unwrap();
        let receipt: String = conn
            .query_row(
                "SELECT receipt FROM batches WHERE batch = 'LIVE-2026-11'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        let receipt: dangan_sync::wire::Receipt = serde_json::from_str(&receipt).unwrap();
        assert_eq!(receipt.body.node_id, "330106-live");
        dangan_sync::receipt::verify_receipt(
            &receipt,
            &hub.backend.hub_key(),
            &receipt.body.manifest_hash,
        )
        .unwrap();
    }

    // Closing again archives nothing twice; once NOV-0003 is approved, it
    // is archived in a batch of its own.
    let (_, again) = guan
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2026-11", "force": "再次确认" })),
        )
        .await;
    assert_eq!(again["archived_files"], 0, "{again}");
    assert_eq!(again["archived_before"], 2);
    assert_eq!(again["batches"], serde_json::json!([]));
    zhou.json(Method::POST, "/api/v1/live/NOV-0003/approve", None)
        .await;
    let (status, last) = guan
        .json(
            Method::POST,
            "/api/v1/closes",
            Some(serde_json::json!({ "month": "2026-11" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{last}");
    assert_eq!(last["batches"], serde_json::json!(["LIVE-2026-11-2"]));
    assert_eq!(last["archived_files"], 1);
    assert_eq!(last["archived_before"], 2);
    let (_, all) = zhou
        .json(Method::GET, "/api/v1/search?business_number=NOV-*", None)
        .await;
    assert_eq!(all["total"], 3, "each archived once: {all}");

    // Handed over to the district: its reconciliation counts them, and the
    // close's pseudo-node is no edge to lose contact with.
    let admin = system(&served, hub.admin_token.clone());
    let (_, reconciled) = admin
        .json(Method::GET, "/api/v1/reconcile?district=330106", None)
        .await;
    let district = &reconciled["districts"][0];
    assert_eq!(district["district"], "330106", "{reconciled}");
    assert_eq!(
        district["live"],
        serde_json::json!({ "open": 0, "submitted": 0, "returned": 0, "approved": 0, "archived": 3 })
    );
    assert_eq!(district["nodes"], serde_json::json!([]));
    assert_eq!(district["stale"], false);
    assert_eq!(district["counts"]["archived"], 2, "the two monthly batches");

    // The report, also as CSV.
    let csv = guan
        .http
        .get(format!("{}/api/v1/closes/2026-11?format=csv", guan.base))
        .bearer_auth(&guan.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("section,key,name,files,pages,state,reason"),
        "{csv}"
    );
    assert!(csv.contains("organisation,330106001,西溪街道,1,2"), "{csv}");
    // The archive administrator's page shows the month and its report.
    let page = guan
        .http
        .get(format!("{}/close?month=2026-11", guan.base))
        .header("Cookie", format!("dangan_hub_session={}", guan.token))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for shown in [
        "月结报告",
        "LIVE-2026-11-2",
        "西溪街道",
        "close-csv",
        "本区县：330106",
    ] {
        assert!(html.contains(shown), "the close page lacks {shown}");
    }
    served.stop().await;
}
