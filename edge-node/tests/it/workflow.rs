//! The archive room's workflow through the CLI: templates (versioned, bound
//! to batches), the lifecycle override, and indexing (著录) from an export.

use crate::common::Edge;
use serde_json::Value;

/// Ingests a generated batch of barcode pages with `business_type` and
/// returns the business numbers of its business files, in order.
fn scanned_batch(edge: &Edge, batch: &str, business_type: &str, pages: usize) -> Vec<String> {
    let folders = dangan_testkit::sets::write_district(&edge.inputs("scans"), 1, pages)
        .expect("generate pages");
    let folder = folders[0].display().to_string();
    edge.json(&[
        "ingest",
        "--batch",
        batch,
        "--business-type",
        business_type,
        &folder,
    ]);
    edge.show(batch)["business_files"]
        .as_array()
        .expect("business files")
        .iter()
        .filter_map(|f| f["business_number"].as_str().map(str::to_owned))
        .collect()
}

fn db(edge: &Edge) -> rusqlite::Connection {
    rusqlite::Connection::open(edge.data().join("edge.db")).expect("open edge.db")
}

#[test]
fn templates_are_seeded_versioned_and_batches_keep_their_version() {
    let edge = Edge::new();
    let list = edge.json(&["template", "list"]);
    let list = list.as_array().expect("templates");
    assert!(list.len() >= 5, "{list:?}");
    let c01 = list
        .iter()
        .find(|t| t["business_type"] == "C01")
        .expect("C01 seeded");
    assert_eq!(c01["version"], 1);
    assert_eq!(c01["category"], "records");
    assert_eq!(c01["retention"], 100);

    // An unknown business type is refused, naming the known ones.
    let scans = edge.inputs("one");
    std::fs::write(scans.join("x.txt"), b"not used").expect("write");
    let out = edge.run(&[
        "ingest",
        "--batch",
        "B0",
        "--business-type",
        "NOPE",
        &scans.display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NOPE") && stderr.contains("C01"),
        "{stderr}"
    );

    scanned_batch(&edge, "B1", "C01", 4);
    // A new version of C01: 30 years instead of 100.
    let changed = dangan_edge::template::SEED.replacen(
        "business_type = \"C01\"\nname = \"个人参保登记\"\ncategory = \"records\"\nretention = 100",
        "business_type = \"C01\"\nname = \"个人参保登记\"\ncategory = \"records\"\nretention = 30",
        1,
    );
    assert_ne!(
        changed,
        dangan_edge::template::SEED,
        "the seed changed shape"
    );
    let file = edge.root.path().join("templates.toml");
    std::fs::write(&file, changed).expect("write templates");
    let report = edge.json(&["template", "import", &file.display().to_string()]);
    assert_eq!(report["updated"], serde_json::json!(["C01"]));
    assert!(report["unchanged"].as_array().expect("unchanged").len() >= 4);
    let current = edge.json(&["template", "show", "C01"]);
    assert_eq!(
        (current["version"].clone(), current["retention"].clone()),
        (2.into(), 30.into())
    );
    let first = edge.json(&["template", "show", "C01", "--template-version", "1"]);
    assert_eq!(first["retention"], 100);

    // B1 was bound to version 1 and stays there; a new batch gets version 2.
    scanned_batch(&edge, "B2", "C01", 3);
    let bound: Vec<(String, u32)> = db(&edge)
        .prepare(
            "SELECT name, template_version FROM batches WHERE name IN ('B1','B2') ORDER BY name",
        )
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(bound, vec![("B1".to_owned(), 1), ("B2".to_owned(), 2)]);

    // A malformed template file changes nothing.
    std::fs::write(
        &file,
        "version = 1\n[[template]]\nbusiness_type = \"C01\"\n",
    )
    .expect("write");
    let out = edge.run(&["template", "import", &file.display().to_string()]);
    assert!(!out.status.success());
    assert_eq!(edge.json(&["template", "show", "C01"])["version"], 2);
}

#[test]
fn the_accept_override_needs_a_reason_and_is_recorded() {
    let edge = Edge::new();
    scanned_batch(&edge, "B1", "C01", 3);
    let out = edge.run(&["batch", "accept", "B1"]);
    assert!(!out.status.success(), "accepted without a reason");
    assert_eq!(edge.show("B1")["state"], "open");

    let accepted = edge
        .command(&[
            "batch",
            "accept",
            "B1",
            "--reason",
            "QC done on paper",
            "--json",
        ])
        .env("USER", "zhangwei")
        .output()
        .expect("run");
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let events = edge.json(&["batch", "events", "B1"]);
    let events = events.as_array().expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["from"], "open");
    assert_eq!(events[0]["to"], "accepted");
    assert_eq!(events[0]["actor"], "local:zhangwei");
    assert_eq!(events[0]["reason"], "QC done on paper");
    assert_eq!(events[0]["override"], true);

    // Accepted batches take no more overrides.
    let again = edge.run(&["batch", "accept", "B1", "--reason", "again"]);
    assert!(!again.status.success());
}

/// A valid identity number for a given 17-digit prefix.
fn person_id(digits: &str) -> String {
    let check = dangan_shared::PersonId::check_character(digits).expect("17 digits");
    format!("{digits}{check}")
}

fn field(edge: &Edge, number: &str, column: &str) -> Option<String> {
    db(edge)
        .query_row(
            &format!("SELECT {column} FROM business_files WHERE business_number = ?1"),
            [number],
            |row| row.get(0),
        )
        .expect("query")
}

#[test]
fn an_index_import_reports_matched_unmatched_duplicate_and_bad_rows() {
    let edge = Edge::new();
    let numbers = scanned_batch(&edge, "B1", "C01", 8);
    assert!(numbers.len() >= 3, "{numbers:?}");
    let (a, b, c) = (&numbers[0], &numbers[1], &numbers[2]);
    // An operator already entered a name for c by hand.
    db(&edge)
        .execute(
            "UPDATE business_files SET person_name = '王五', metadata_source = 'manual'
             WHERE business_number = ?1",
            [c],
        )
        .expect("manual entry");

    let good = person_id("33010619800101123");
    let bad = {
        let mut id = person_id("33010619800101124").into_bytes();
        id[17] = if id[17] == b'0' { b'1' } else { b'0' };
        String::from_utf8(id).expect("ascii")
    };
    let csv = format!(
        "业务流水号,社会保障号码,姓名,单位编号,业务日期\n\
         {a},{good},张三,E001,2020-06-15\n\
         {b},,李四,,2021/3/4\n\
         {c},,赵六,,2019-01-01\n\
         YW-NOT-SCANNED-1,,钱七,,2022-02-02\n\
         YW-TWICE,,甲,,2020-01-01\n\
         YW-TWICE,,乙,,2020-01-02\n\
         {a}-X,{bad},孙八,,2020-01-01\n\
         ,{good},无号,,2020-01-01\n\
         YW-BAD-DATE,,周九,,2020-02-30\n"
    );
    let file = edge.root.path().join("export.csv");
    std::fs::write(&file, csv).expect("write export");
    let report = edge.json(&["index", "import", &file.display().to_string()]);

    assert_eq!(report["rows"], 9);
    assert_eq!(report["matched"], 3, "{report}");
    assert_eq!(report["unmatched"], 1, "{report}");
    let duplicates = report["duplicates"].as_array().expect("duplicates");
    assert_eq!(duplicates.len(), 1);
    assert_eq!(duplicates[0]["business_number"], "YW-TWICE");
    assert_eq!(duplicates[0]["rows"], serde_json::json!([6, 7]));
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().expect("row"),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0].0, 8);
    assert!(rejected[0].1.contains("check character"), "{rejected:?}");
    assert_eq!(rejected[1].0, 9);
    assert!(rejected[1].1.contains("business number"), "{rejected:?}");
    assert_eq!(rejected[2].0, 10);
    assert!(rejected[2].1.contains("not a date"), "{rejected:?}");
    let conflicts = report["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["field"], "person_name");
    assert_eq!(conflicts[0]["existing"], "王五");
    assert_eq!(conflicts[0]["imported"], "赵六");

    assert_eq!(field(&edge, a, "person_id"), Some(good.clone()));
    assert_eq!(field(&edge, a, "person_name").as_deref(), Some("张三"));
    assert_eq!(
        field(&edge, b, "business_date").as_deref(),
        Some("2021-03-04")
    );
    // The operator's entry stands; the rest of the row still applied.
    assert_eq!(field(&edge, c, "person_name").as_deref(), Some("王五"));
    assert_eq!(
        field(&edge, c, "business_date").as_deref(),
        Some("2019-01-01")
    );
    // Every change is in the history, attributed.
    let changes: i64 = db(&edge)
        .query_row(
            "SELECT count(*) FROM metadata_changes WHERE actor LIKE 'local:%'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(changes, 4 + 2 + 1);

    // A newer export replaces imported values (not the operator's).
    let newer = format!("business_number,person_name\n{a},张三丰\n{c},赵六\n");
    std::fs::write(&file, newer).expect("write export");
    let report: Value = edge.json(&["index", "import", &file.display().to_string()]);
    assert_eq!(report["matched"], 2);
    assert_eq!(field(&edge, a, "person_name").as_deref(), Some("张三丰"));
    assert_eq!(field(&edge, c, "person_name").as_deref(), Some("王五"));
}

#[test]
fn an_export_imported_before_the_scan_fills_the_business_files_when_scanned() {
    // Learn the business numbers the generated pages carry.
    let first = Edge::new();
    let numbers = scanned_batch(&first, "B1", "C01", 6);
    assert!(!numbers.is_empty());

    let edge = Edge::new();
    let id = person_id("44030519900307456");
    let rows: String = numbers
        .iter()
        .map(|n| format!("{n},{id},测试,2023-05-06\n"))
        .collect();
    let file = edge.root.path().join("export.csv");
    std::fs::write(
        &file,
        format!("business_number,person_id,person_name,business_date\n{rows}"),
    )
    .expect("write export");
    let report = edge.json(&["index", "import", &file.display().to_string()]);
    assert_eq!(report["unmatched"], numbers.len(), "{report}");
    assert_eq!(report["matched"], 0);

    let scanned = scanned_batch(&edge, "B1", "C01", 6);
    assert_eq!(scanned, numbers);
    for number in &numbers {
        assert_eq!(field(&edge, number, "person_id"), Some(id.clone()));
        assert_eq!(
            field(&edge, number, "business_date").as_deref(),
            Some("2023-05-06")
        );
        assert!(field(&edge, number, "metadata_source").is_some_and(|s| s.starts_with("import:")),);
    }
}

fn with_stdin(edge: &Edge, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = edge
        .command(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write password");
    child.wait_with_output().expect("wait")
}

#[test]
fn users_are_added_with_hashed_passwords_and_can_be_disabled() {
    let edge = Edge::new();
    // Cheap hashes in tests; the default is OWASP's 19 MiB × 2.
    edge.write_config("[users]\nmemory_kib = 8\niterations = 1\n");
    let added = with_stdin(
        &edge,
        &[
            "user",
            "add",
            "li.na",
            "--role",
            "operator",
            "--display-name",
            "李娜",
            "--json",
        ],
        "s3cret-pass\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let hash: String = db(&edge)
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'li.na'",
            [],
            |row| row.get(0),
        )
        .expect("hash");
    assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
    assert!(dangan_edge::users::verify_password("s3cret-pass", &hash));
    assert!(!hash.contains("s3cret"));

    let weak = with_stdin(
        &edge,
        &["user", "add", "wang", "--role", "inspector"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("8 characters"));
    let twice = with_stdin(
        &edge,
        &["user", "add", "li.na", "--role", "admin"],
        "another-pass\n",
    );
    assert!(!twice.status.success());
    let bad_role = with_stdin(
        &edge,
        &["user", "add", "zhao", "--role", "boss"],
        "another-pass\n",
    );
    assert!(!bad_role.status.success());

    edge.json(&["user", "disable", "li.na"]);
    let list = edge.json(&["user", "list"]);
    assert_eq!(list.as_array().expect("users").len(), 1);
    assert_eq!(list[0]["display_name"], "李娜");
    assert_eq!(list[0]["role"], "operator");
    assert_eq!(list[0]["disabled"], true);
    assert!(list[0].get("password_hash").is_none());
}

fn states(edge: &Edge, batch: &str) -> Vec<(String, String)> {
    edge.json(&["batch", "events", batch])
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["from"].as_str().expect("from").to_owned(),
                e["to"].as_str().expect("to").to_owned(),
            )
        })
        .collect()
}

#[test]
fn qc_samples_reproducibly_sends_a_failing_batch_to_rework_and_accepts_a_passing_one() {
    let edge = Edge::new();
    scanned_batch(&edge, "B1", "C01", 24);
    // QC cannot start before the batch is marked scanned.
    assert!(!edge.run(&["qc", "start", "B1"]).status.success());
    edge.json(&["batch", "scanned", "B1"]);

    let round = edge.json(&["qc", "start", "B1", "--seed", "2026"]);
    // C01: 5% with a floor of 10 pages; 24 pages → 10.
    let sample: Vec<u32> = round["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|p| p.as_u64().expect("page") as u32)
        .collect();
    assert_eq!(sample.len(), 10);
    let rule = dangan_shared::qc::SamplingRule::default();
    let expected: Vec<u32> = dangan_shared::qc::sample(24, 2026, &rule)
        .into_iter()
        .map(|p| p + 1)
        .collect();
    assert_eq!(sample, expected, "the stored seed names the sample");

    // A page outside the sample cannot be judged; a bad verdict is refused.
    let outside = (1..=24)
        .find(|p| !sample.contains(p))
        .expect("unsampled page");
    assert!(
        !edge
            .run(&["qc", "check", "B1", &outside.to_string(), "pass"])
            .status
            .success()
    );
    assert!(
        !edge
            .run(&["qc", "check", "B1", &sample[0].to_string(), "smudge"])
            .status
            .success()
    );
    // Finishing with pages unchecked is refused.
    assert!(!edge.run(&["qc", "finish", "B1"]).status.success());

    for (i, page) in sample.iter().enumerate() {
        let verdict = match i {
            0 => "skew",
            1 => "blur",
            _ => "pass",
        };
        edge.json(&["qc", "check", "B1", &page.to_string(), verdict]);
    }
    let outcome = edge.json(&["qc", "finish", "B1"]);
    assert_eq!(outcome["state"], "rework");
    assert_eq!(outcome["passed"], 8);
    assert_eq!(outcome["checked"], 10);
    let defects: Vec<&str> = outcome["defects"]
        .as_array()
        .expect("defects")
        .iter()
        .map(|d| d["defect"].as_str().expect("defect"))
        .collect();
    assert_eq!(defects, ["skew", "blur"]);

    // Round 2 after the rework: every page passes, but an open exception
    // keeps the batch in QC until it is resolved.
    let round = edge.json(&["qc", "start", "B1", "--seed", "7"]);
    assert_eq!(round["round"], 2);
    // The sample names pages by number: no regrouping while QC runs.
    let regroup = edge.run(&["file", "split", "B1", "1", "--at", "2"]);
    assert!(!regroup.status.success());
    assert!(String::from_utf8_lossy(&regroup.stderr).contains("in_qc"));
    for page in round["sample"].as_array().expect("sample") {
        edge.json(&["qc", "check", "B1", &page.to_string(), "pass"]);
    }
    // An exception recorded at ingest (as a page with two business numbers
    // would be), besides the files' missing metadata and documents (C01).
    db(&edge)
        .execute(
            "INSERT INTO exceptions(batch_id, code, detail, created_at)
             SELECT id, 'multiple_business_numbers', 'test', '2026-01-01T00:00:00Z' FROM batches
             WHERE name = 'B1'",
            [],
        )
        .expect("exception");
    let blocked = edge.run(&["qc", "finish", "B1"]);
    assert!(!blocked.status.success());
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("open exceptions"));
    let open = edge.json(&["exception", "list", "B1"]);
    let open = open.as_array().expect("exceptions");
    let files = edge.show("B1")["business_files"]
        .as_array()
        .expect("files")
        .len();
    let count = |code: &str| open.iter().filter(|e| e["code"] == code).count();
    assert_eq!(count("missing_metadata"), files);
    assert_eq!(count("missing_document"), files);
    assert_eq!(count("multiple_business_numbers"), 1);
    // The batch list counts the same queue (in set-wide queries).
    let listed = edge.json(&["batch", "list"]);
    assert_eq!(listed[0]["exceptions"], open.len(), "{listed}");
    let recorded = open
        .iter()
        .find(|e| e["code"] == "multiple_business_numbers")
        .and_then(|e| e["id"].as_str())
        .expect("recorded id");
    // A derived exception is not closed by a note; a recorded one is.
    assert!(
        !edge
            .run(&["exception", "resolve", "B1", "f1-metadata", "--note", "x"])
            .status
            .success()
    );
    edge.json(&[
        "exception",
        "resolve",
        "B1",
        recorded,
        "--note",
        "the first number is right",
    ]);
    for file in 1..=files {
        let file = file.to_string();
        edge.json(&[
            "file",
            "set",
            "B1",
            &file,
            "--person-id",
            &person_id("11010519491231002"),
            "--person-name",
            "张三",
            "--business-date",
            "2024-05-06",
            "--organisation",
            "330106001",
        ]);
        edge.json(&[
            "file",
            "documents",
            "B1",
            &file,
            "--present",
            "参保人员登记表",
            "--absent",
            "身份证复印件=原件未附",
        ]);
    }
    assert_eq!(
        edge.json(&["exception", "list", "B1"]),
        serde_json::json!([])
    );
    let all = edge.json(&["exception", "list", "B1", "--all"]);
    assert_eq!(all[0]["resolution"], "the first number is right");
    let outcome = edge.json(&["qc", "finish", "B1"]);
    assert_eq!(outcome["state"], "accepted");

    assert_eq!(
        states(&edge, "B1"),
        [
            ("open", "scanned"),
            ("scanned", "in_qc"),
            ("in_qc", "rework"),
            ("rework", "in_qc"),
            ("in_qc", "accepted"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let report = edge.json(&["qc", "report", "B1"]);
    let rounds = report["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0]["defects_by_type"]["skew"], 1);
    assert_eq!(rounds[0]["seed"], 2026);
    assert_eq!(rounds[1]["outcome"], "pass");
    let csv = edge.run(&["qc", "report", "B1", "--csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("batch,round,page,verdict"));
    assert_eq!(csv.lines().count(), 1 + 10 + 10);
    assert!(csv.contains(",skew,"));
}

#[test]
fn qc_start_flags_a_skewed_page_before_anyone_looks() {
    use dangan_testkit::pages::{PageSpec, encode_jpeg, render_page};
    let edge = Edge::new();
    let scans = edge.inputs("skew");
    for (name, skew) in [("p1-straight.jpg", 0.0), ("p2-skewed.jpg", 3.0)] {
        let spec = PageSpec {
            skew_degrees: skew,
            ..PageSpec::with_codes(300, 11, vec![])
        };
        std::fs::write(scans.join(name), encode_jpeg(&render_page(&spec), 85, 300))
            .expect("write page");
    }
    edge.json(&[
        "ingest",
        "--batch",
        "S1",
        "--business-type",
        "C01",
        &scans.display().to_string(),
    ]);
    edge.json(&["batch", "scanned", "S1"]);
    let round = edge.json(&["qc", "start", "S1"]);
    // Two pages, under the floor: both sampled.
    assert_eq!(round["sample"], serde_json::json!([1, 2]));
    let flags: Vec<(u64, String)> = round["prechecks"]
        .as_array()
        .expect("prechecks")
        .iter()
        .map(|f| {
            (
                f["page"].as_u64().expect("page"),
                f["check"].as_str().expect("check").to_owned(),
            )
        })
        .collect();
    assert_eq!(flags, [(2, "skew".to_owned())], "{round}");
    let skew: f64 = db(&edge)
        .query_row("SELECT skew_degrees FROM pages WHERE seq = 2", [], |row| {
            row.get(0)
        })
        .expect("skew");
    assert!((skew.abs() - 3.0).abs() < 0.3, "{skew}");
}

/// Writes a 300-dpi text page (JPEG) into `folder` as `name`.
fn write_page(folder: &std::path::Path, name: &str, seed: u64, colour: bool) {
    use dangan_testkit::pages::{PageSpec, encode_jpeg, render_page};
    let spec = PageSpec {
        colour,
        ..PageSpec::with_codes(300, seed, vec![])
    };
    std::fs::write(folder.join(name), encode_jpeg(&render_page(&spec), 85, 300))
        .expect("write page");
}

#[test]
fn pages_record_who_scanned_them_and_qc_counts_defects_by_operator() {
    let edge = Edge::new();
    for (user, folder, seeds) in [("li", "a", [21, 22]), ("wang", "b", [23, 24])] {
        let scans = edge.inputs(folder);
        for seed in seeds {
            write_page(&scans, &format!("p{seed}.jpg"), seed, false);
        }
        let out = edge
            .command(&[
                "ingest",
                "--batch",
                "O1",
                "--business-type",
                "C01",
                &scans.display().to_string(),
                "--json",
            ])
            .env("USER", user)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let operators: Vec<String> = crate::common::pages(&edge.show("O1"))
        .iter()
        .map(|p| p["operator"].as_str().expect("operator").to_owned())
        .collect();
    assert_eq!(
        operators,
        ["local:li", "local:li", "local:wang", "local:wang"]
    );

    edge.json(&["batch", "scanned", "O1"]);
    let round = edge.json(&["qc", "start", "O1", "--seed", "1"]);
    // Four pages, under the floor: all sampled.
    assert_eq!(round["sample"], serde_json::json!([1, 2, 3, 4]));
    for (page, verdict) in [(1, "blur"), (2, "pass"), (3, "skew"), (4, "cropped")] {
        edge.json(&["qc", "check", "O1", &page.to_string(), verdict]);
    }
    assert_eq!(edge.json(&["qc", "finish", "O1"])["state"], "rework");
    let report = edge.json(&["qc", "report", "O1"]);
    assert_eq!(
        report["rounds"][0]["defects_by_operator"],
        serde_json::json!({ "local:li": 1, "local:wang": 2 })
    );
    assert_eq!(report["rounds"][0]["checks"][2]["operator"], "local:wang");
}

/// The `colour` pre-check flags of a QC round: (page, detail).
fn colour_flags(round: &Value) -> Vec<(u64, String)> {
    round["prechecks"]
        .as_array()
        .expect("prechecks")
        .iter()
        .filter(|f| f["check"] == "colour")
        .map(|f| {
            (
                f["page"].as_u64().expect("page"),
                f["detail"].as_str().expect("detail").to_owned(),
            )
        })
        .collect()
}

#[test]
fn qc_start_flags_pages_in_a_colour_mode_the_template_does_not_accept() {
    use dangan_testkit::pages::{PageSpec, render_page};
    let edge = Edge::new();
    // The same three pages (gray, bilevel, colour) for each batch, from
    // their own folder (a file already recorded is not taken again).
    let scans = |folder: &str| {
        let scans = edge.inputs(folder);
        write_page(&scans, "p1-gray.jpg", 31, false);
        let page = render_page(&PageSpec::with_codes(300, 32, vec![])).to_luma8();
        std::fs::write(
            scans.join("p2-bilevel.tif"),
            dangan_testkit::containers::tiff_g4(&[page], 300),
        )
        .expect("write page");
        write_page(&scans, "p3-colour.jpg", 33, true);
        scans.display().to_string()
    };
    // C01 accepts gray or colour: a bilevel scan loses stamps and is flagged.
    edge.json(&[
        "ingest",
        "--batch",
        "C1",
        "--business-type",
        "C01",
        &scans("c01"),
    ]);
    let colours: Vec<String> = crate::common::pages(&edge.show("C1"))
        .iter()
        .map(|p| p["colour"].as_str().expect("colour").to_owned())
        .collect();
    assert_eq!(colours, ["gray", "bilevel", "colour"]);
    edge.json(&["batch", "scanned", "C1"]);
    let flags = colour_flags(&edge.json(&["qc", "start", "C1"]));
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].0, 2);
    assert!(
        flags[0].1.contains("bilevel") && flags[0].1.contains("gray or colour"),
        "{flags:?}"
    );

    // D03 (receipts) accepts colour only: the gray and bilevel pages are flagged.
    edge.json(&[
        "ingest",
        "--batch",
        "C2",
        "--business-type",
        "D03",
        &scans("d03"),
    ]);
    edge.json(&["batch", "scanned", "C2"]);
    let flags = colour_flags(&edge.json(&["qc", "start", "C2"]));
    let pages: Vec<u64> = flags.iter().map(|(page, _)| *page).collect();
    assert_eq!(pages, [1, 2], "{flags:?}");
    assert!(flags[0].1.contains("gray") && flags[0].1.contains("colour only"));

    // Z01 accepts anything.
    edge.json(&[
        "ingest",
        "--batch",
        "C3",
        "--business-type",
        "Z01",
        &scans("z01"),
    ]);
    edge.json(&["batch", "scanned", "C3"]);
    assert!(colour_flags(&edge.json(&["qc", "start", "C3"])).is_empty());
}

/// Business files and pages as `batch show` numbers them: (file seq,
/// business number, page seqs).
fn layout(edge: &Edge, batch: &str) -> Vec<(i64, Option<String>, Vec<i64>)> {
    edge.show(batch)["business_files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["seq"].as_i64().expect("seq"),
                f["business_number"].as_str().map(str::to_owned),
                f["pages"]
                    .as_array()
                    .expect("pages")
                    .iter()
                    .map(|p| p["seq"].as_i64().expect("page"))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn grouping_edits_keep_files_and_pages_numbered_in_order_and_are_recorded() {
    let edge = Edge::new();
    let numbers = scanned_batch(&edge, "B1", "Z01", 12);
    assert!(numbers.len() >= 3, "{numbers:?}");
    let before = layout(&edge, "B1");
    let blob_of = |seq: i64| -> String {
        edge.show("B1")["business_files"]
            .as_array()
            .expect("files")
            .iter()
            .flat_map(|f| f["pages"].as_array().expect("pages").clone())
            .find(|p| p["seq"] == seq)
            .expect("page")["blob"]
            .as_str()
            .expect("blob")
            .to_owned()
    };
    // Move the last page of file 3 to file 1: it becomes file 1's last page.
    let moved = *before[2].2.last().expect("page");
    let moved_blob = blob_of(moved);
    edge.json(&[
        "file",
        "assign",
        "B1",
        "--pages",
        &moved.to_string(),
        "--to",
        "1",
    ]);
    let after = layout(&edge, "B1");
    let last_of_first = *after[0].2.last().expect("page");
    assert_eq!(
        blob_of(last_of_first),
        moved_blob,
        "the page moved with its image"
    );
    // Numbering stays 1..n files and 1..N pages in reading order.
    let pages: Vec<i64> = after.iter().flat_map(|f| f.2.clone()).collect();
    assert_eq!(pages, (1..=12).collect::<Vec<i64>>());
    assert_eq!(
        after.iter().map(|f| f.0).collect::<Vec<_>>(),
        (1..=after.len() as i64).collect::<Vec<_>>()
    );

    // Files with two different business numbers are not joined.
    let refused = edge.run(&["file", "join", "B1", "2", "--into", "1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("different business numbers"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A separator in the middle of file 1 splits it; the new file has no
    // business number until one is given, and a number another file has
    // is refused.
    let first = layout(&edge, "B1")[0].2.clone();
    assert!(first.len() >= 3, "{first:?}");
    edge.json(&["file", "separator", "B1", &first[1].to_string()]);
    let split = layout(&edge, "B1");
    assert_eq!(split[0].2, first[..2].to_vec());
    assert_eq!(split[1].1, None);
    let list = edge.json(&["exception", "list", "B1"]);
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|e| e["id"] == "f2-number" && e["code"] == "no_business_number"),
        "{list}"
    );
    let taken = edge.run(&["file", "set", "B1", "2", "--business-number", &numbers[1]]);
    assert!(!taken.status.success());
    edge.json(&[
        "file",
        "set",
        "B1",
        "2",
        "--business-number",
        "YL2026-NEW-0001",
    ]);
    assert_eq!(layout(&edge, "B1")[1].1.as_deref(), Some("YL2026-NEW-0001"));

    // Retention from the template and the file's date: Z01 keeps 10 years
    // from 1 January after the date; a file of type A01 is permanent.
    edge.json(&["file", "set", "B1", "1", "--business-date", "2020-06-15"]);
    let shown = edge.json(&["file", "show", "B1", "1"]);
    assert_eq!(shown["retention"], "10y");
    assert_eq!(shown["retention_until"], "2031-01-01");
    edge.json(&["file", "set", "B1", "1", "--business-type", "A01"]);
    let shown = edge.json(&["file", "show", "B1", "1"]);
    assert_eq!(shown["retention"], "permanent");
    assert_eq!(shown["retention_until"], serde_json::Value::Null);

    let edits = edge.json(&["batch", "edits", "B1"]);
    let actions: Vec<&str> = edits
        .as_array()
        .expect("edits")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["assign", "separator", "metadata", "metadata", "metadata"]
    );

    // Once accepted, the grouping is closed.
    edge.json(&["batch", "accept", "B1", "--reason", "test"]);
    let closed = edge.run(&["file", "split", "B1", "1", "--at", "2"]);
    assert!(!closed.status.success());
    assert!(String::from_utf8_lossy(&closed.stderr).contains("accepted"));
}
