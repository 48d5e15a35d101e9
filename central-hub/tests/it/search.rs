//! Search through `GET /api/v1/search` on a real socket: names by a part
//! of two or three characters, person ids, business numbers, combined
//! criteria, pages and order, the caller's scope (organisation and grants),
//! refused queries, and the audit entry of every search.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use dangan_hub::users::Role;
use rusqlite::{Connection, params};
use serde_json::Value;

use crate::backend::{Served, hub};

const PASSWORD: &str = "a-good-password";

/// 西湖区 (with a street office) and 滨江区 under the test hub's city, a
/// node and a batch in each, and hub users.
fn seed(conn: &mut Connection) {
    use dangan_hub::orgs;
    orgs::add(conn, "330106", "西湖区", Some("330100")).unwrap();
    orgs::add(conn, "330106001", "北山街道", Some("330106")).unwrap();
    orgs::add(conn, "330108", "滨江区", Some("330100")).unwrap();
    for district in ["330106", "330108"] {
        conn.execute(
            "INSERT INTO nodes(id, district, token_hash, enrolled_at)
             VALUES (?1, ?2, ?1, '2026-11-01T00:00:00Z')",
            params![format!("node-{district}"), district],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO batches(district, batch, manifest_hash, accepted_at, node_id, pages,
                 blobs, bytes, committed_at, receipt)
             VALUES (?1, 'B1', 'h', '2026-11-01T00:00:00Z', ?2, 0, 0, 0,
                     '2026-11-01T00:00:00Z', '{}')",
            params![district, format!("node-{district}")],
        )
        .unwrap();
    }
    let cheap = dangan_shared::password::PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };
    for (name, role, org) in [
        ("zhang", Role::Reviewer, "330106"),
        ("wang", Role::Reviewer, "330108"),
        ("li", Role::Auditor, "330108"),
    ] {
        dangan_hub::users::add(conn, name, None, role, org, PASSWORD, cheap).unwrap();
    }
}

/// An archived business file with `pages` pages, as a commit writes it.
struct File<'a> {
    district: &'a str,
    organisation: &'a str,
    number: &'a str,
    person_id: &'a str,
    name: &'a str,
    date: &'a str,
}

fn archive(conn: &Connection, file: &File<'_>, pages: u32) -> i64 {
    let batch: i64 = conn
        .query_row(
            "SELECT id FROM batches WHERE district = ?1",
            [file.district],
            |row| row.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO business_files(batch_id, seq, business_number, business_type, category,
             retention, date, organisation, person_id, person_name, employer_id)
         VALUES (?1, (SELECT count(*) + 1 FROM business_files WHERE batch_id = ?1), ?2,
                 'pension_enrolment', 'management', '30y', ?3, ?4, ?5, ?6, '91330106MA00000001')",
        params![
            batch,
            file.number,
            file.date,
            file.organisation,
            file.person_id,
            file.name
        ],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    for seq in 1..=pages {
        let blob = blake3::hash(format!("{id}-{seq}").as_bytes())
            .to_hex()
            .to_string();
        conn.execute(
            "INSERT INTO blobs(id, size, stored_at) VALUES (?1, 1, '2026-11-01T00:00:00Z')",
            [&blob],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO pages(batch_id, business_file_id, seq, blob, size, format, width,
                 height, colour, barcodes, separator, blank, source, frame)
             VALUES (?1, ?2, (SELECT count(*) + 1 FROM pages WHERE batch_id = ?1), ?3, 1,
                     'jpeg', 10, 10, 'gray', '[]', 0, 0, 'scan', 0)",
            params![batch, id, blob],
        )
        .unwrap();
    }
    id
}

/// An audit entry's detail (stored as JSON text).
fn detail(entry: &Value) -> Value {
    serde_json::from_str(entry["detail"].as_str().unwrap()).unwrap()
}

const ZHANG_SANFENG: &str = "330106199001010011";

fn numbers(body: &Value) -> Vec<&str> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["business_number"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn reviewers_find_files_of_their_scope_by_name_id_number_and_dates() {
    let hub = hub();
    {
        let mut conn = hub.backend.db().get().unwrap();
        seed(&mut conn);
        fn west<'a>(number: &'a str, person_id: &'a str, name: &'a str, date: &'a str) -> File<'a> {
            File {
                district: "330106",
                organisation: "330106001",
                number,
                person_id,
                name,
                date,
            }
        }
        archive(
            &conn,
            &west("A-001", ZHANG_SANFENG, "张三丰", "2024-05-01"),
            3,
        );
        archive(
            &conn,
            &west("A-002", "330106198506060022", "张三", "2025-01-10"),
            1,
        );
        archive(
            &conn,
            &west("A-003", "330106197001010033", "王三丰", "2023-03-03"),
            1,
        );
        archive(
            &conn,
            &west("A-004", ZHANG_SANFENG, "张三丰", "2025-06-01"),
            2,
        );
        for day in 1..=25 {
            let number = format!("L-{day:03}");
            let date = format!("2020-01-{day:02}");
            archive(
                &conn,
                &west(&number, "330106196001010055", "李四", &date),
                1,
            );
        }
        archive(
            &conn,
            &File {
                district: "330108",
                organisation: "330108",
                number: "B-001",
                person_id: "330108199202020044",
                name: "张三丰",
                date: "2024-07-07",
            },
            1,
        );
    }
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let login = |name: &str| {
        let request = client
            .post(format!("http://{addr}/api/v1/session"))
            .json(&serde_json::json!({ "username": name, "password": PASSWORD }));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let search = |token: &str, query: &[(&str, &str)]| {
        let url = reqwest::Url::parse_with_params(&format!("http://{addr}/api/v1/search"), query)
            .unwrap();
        let request = client.get(url).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let zhang = login("zhang").await;
    let wang = login("wang").await;
    let li = login("li").await;
    let mut searches = 0;

    // Two characters of a name (三丰 in 张三丰), newest first; three
    // characters; a hit says where it lies and how many pages it has.
    let (status, body) = search(&zhang, &[("name", "三丰")]).await;
    searches += 1;
    assert_eq!(status, 200, "{body}");
    assert_eq!(numbers(&body), ["A-004", "A-001", "A-003"]);
    assert_eq!(
        (body["total"].as_u64(), body["total_capped"].as_bool()),
        (Some(3), Some(false))
    );
    let hit = &body["hits"][0];
    assert_eq!(hit["person_name"], "张三丰");
    assert_eq!(hit["organisation_name"], "北山街道");
    assert_eq!(hit["district"], "330106");
    assert_eq!(hit["batch"], "B1");
    assert_eq!(hit["pages"], 2);
    let (status, body) = search(&zhang, &[("name", "张三丰")]).await;
    searches += 1;
    assert_eq!(status, 200, "{body}");
    assert_eq!(numbers(&body), ["A-004", "A-001"]);

    // By person id (lower-case x is the same id), by business number,
    // exactly or by a prefix.
    let (_, body) = search(&zhang, &[("person_id", ZHANG_SANFENG)]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-004", "A-001"]);
    let (_, body) = search(&zhang, &[("business_number", "A-003")]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-003"]);
    let (_, body) = search(
        &zhang,
        &[("business_number", "A-*"), ("sort", "business_number")],
    )
    .await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-001", "A-002", "A-003", "A-004"]);

    // Criteria combine: a name part within a date range and an organisation.
    let (_, body) = search(
        &zhang,
        &[
            ("name", "张三"),
            ("from", "2025-01-01"),
            ("to", "2025-12-31"),
            ("org", "330106"),
            ("business_type", "pension_enrolment"),
        ],
    )
    .await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-004", "A-002"]);
    let (_, body) = search(&zhang, &[("name", "张三"), ("to", "2024-12-31")]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-001"]);

    // Pages: 25 files of 李四, ten a page, oldest first, then newest first.
    let mut seen = Vec::new();
    for page in ["1", "2", "3"] {
        let (status, body) = search(
            &zhang,
            &[
                ("name", "李四"),
                ("sort", "date_asc"),
                ("per_page", "10"),
                ("page", page),
            ],
        )
        .await;
        searches += 1;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 25);
        assert_eq!(body["page"], page.parse::<u64>().unwrap());
        assert_eq!(body["per_page"], 10);
        seen.extend(numbers(&body).into_iter().map(str::to_owned));
    }
    let expected: Vec<String> = (1..=25).map(|day| format!("L-{day:03}")).collect();
    assert_eq!(seen, expected);
    let (_, body) = search(&zhang, &[("name", "李四"), ("per_page", "2")]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["L-025", "L-024"]);
    assert_eq!(body["total"], 25);

    // 滨江区's reviewer finds nothing of 西湖区: an empty answer, not an error.
    for query in [
        &[("name", "三丰")][..],
        &[("person_id", ZHANG_SANFENG)][..],
        &[("business_number", "A-001")][..],
    ] {
        let (status, body) = search(&wang, query).await;
        searches += 1;
        assert_eq!(status, 200, "{body}");
        let found = numbers(&body);
        assert!(found.iter().all(|n| n.starts_with("B-")), "{found:?}");
    }
    let (_, body) = search(&wang, &[("person_id", ZHANG_SANFENG)]).await;
    searches += 1;
    assert_eq!((body["total"].as_u64(), numbers(&body).len()), (Some(0), 0));

    // An auditor of 滨江区 sees 西湖区's files while a grant lasts.
    let (_, body) = search(&li, &[("name", "张三丰")]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["B-001"]);
    let tomorrow =
        dangan_hub::store::time_after(std::time::Duration::from_secs(86_400))[..10].to_owned();
    {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::users::grant(&mut conn, "li", "330106", &tomorrow, "专项稽核", "root").unwrap();
    }
    let (_, body) = search(&li, &[("name", "张三丰")]).await;
    searches += 1;
    assert_eq!(numbers(&body), ["A-004", "B-001", "A-001"]);

    // Refused queries say why.
    for (query, message) in [
        (&[("name", "张")][..], "at least 2 characters"),
        (&[][..], "at least one criterion"),
        (
            &[("name", "张三"), ("from", "2025-13-01")][..],
            "from is a date",
        ),
        (&[("name", "张三"), ("sort", "name")][..], "date_desc"),
        (
            &[("name", "张三"), ("per_page", "1000")][..],
            "per_page is 1 to 100",
        ),
        (&[("nme", "张三")][..], "nme"),
    ] {
        let (status, body) = search(&zhang, query).await;
        searches += 1;
        assert_eq!(status, 400, "{query:?}: {body}");
        assert_eq!(body["error"], "malformed");
        let text = body["message"].as_str().unwrap();
        assert!(text.contains(message), "{query:?}: {text}");
    }

    // Every search is in the audit trail with its criteria and its number
    // of hits, or why it was refused; a person looked up is the target.
    let response = client
        .get(format!("http://{addr}/api/v1/audit?action=search"))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let entries: Vec<Value> = response.json().await.unwrap();
    assert_eq!(entries.len(), searches);
    let first = &entries[0];
    assert_eq!(
        (first["actor"].as_str(), first["result"].as_str()),
        (Some("zhang"), Some("ok"))
    );
    assert_eq!(detail(first)["criteria"]["name"], "三丰");
    assert_eq!(detail(first)["hits"], 3);
    let by_person: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["target"] == ZHANG_SANFENG)
        .collect();
    assert_eq!(by_person.len(), 3, "zhang's and wang's two");
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["result"] == "failed")
        .collect();
    assert_eq!(refused.len(), 6);
    assert!(
        detail(refused[0])["reason"]
            .as_str()
            .unwrap()
            .contains("at least 2 characters")
    );
    drop(client);
    served.stop().await;
}
