//! The `dangan-hub` binary as an administrator uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dangan_sync::server::Backend;
use dangan_sync::wire::EnrolRequest;
use serde_json::Value;

fn hub(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dangan-hub"))
        .args(args)
        .env("DANGAN_HUB_DATA", data)
        .env_remove("DANGAN_LANG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run dangan-hub")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn help_names_every_command_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&hub(&["--help"], dir.path()));
    for word in [
        "init",
        "serve",
        "node",
        "reconcile",
        "org",
        "admin-token",
        "--data",
        "--json",
        "--lang",
        "DANGAN_HUB_DATA",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let node = text(&hub(&["node", "--help"], dir.path()));
    for word in ["enrol", "list", "revoke"] {
        assert!(node.contains(word), "node --help lacks {word}:\n{node}");
    }
    let init = text(&hub(&["init", "--help"], dir.path()));
    for word in ["--city", "--city-name", "admin", "user passwd"] {
        assert!(init.contains(word), "init --help lacks {word}:\n{init}");
    }
    let user = text(&hub(&["user", "--help"], dir.path()));
    assert!(user.contains("passwd"), "user --help lacks passwd:\n{user}");
    let serve = text(&hub(&["serve", "--help"], dir.path()));
    for word in ["--listen", "--tls-cert", "--tls-key"] {
        assert!(serve.contains(word), "serve --help lacks {word}");
    }
    let enrol = text(&hub(&["node", "enrol", "--help"], dir.path()));
    assert!(enrol.contains("--district") && enrol.contains("--valid-hours"));
}

#[test]
fn init_prints_the_admin_token_once_and_refuses_to_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    // --data after the subcommand; the environment variable is overridden.
    let made = json(&hub(
        &[
            "init",
            "--json",
            "--city",
            "330100",
            "--city-name",
            "杭州市",
            "--data",
            data.to_str().unwrap(),
        ],
        Path::new("/nonexistent"),
    ));
    let token = made["admin_token"].as_str().unwrap();
    assert!(token.starts_with("dga_"));
    assert_eq!(
        (made["city"].as_str(), made["admin_user"].as_str()),
        (Some("330100"), Some("admin"))
    );
    assert_eq!(made["hub_key"].as_str().unwrap().len(), 64);
    assert!(data.join("hub.toml").is_file());
    let config = std::fs::read_to_string(data.join("hub.toml")).unwrap();
    assert!(config.contains("partial_expiry_hours = 24"));
    // The token is not stored in the clear anywhere in the folder.
    let db = std::fs::read(data.join("hub.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    let again = hub(&["--json", "init", "--city", "330100"], &data);
    assert!(!again.status.success());
    let err: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(err["error"].as_str().unwrap().contains("already"));
    let again = hub(&["init", "--city", "330100"], &data);
    assert!(String::from_utf8_lossy(&again.stderr).contains("错误"));
}

#[test]
fn nodes_are_enrolled_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    json(&hub(&["init", "--city", "330100", "--json"], &data));
    let code = json(&hub(
        &["node", "enrol", "--district", "330106", "--json"],
        &data,
    ));
    assert_eq!(code["district"], "330106");
    assert!(code["expires_at"].as_str().unwrap().ends_with('Z'));
    let bad = hub(&["node", "enrol", "--district", "33x"], &data);
    assert!(!bad.status.success());
    let street = hub(&["node", "enrol", "--district", "330106001"], &data);
    assert!(!street.status.success());
    assert_eq!(
        json(&hub(&["node", "list", "--json"], &data)),
        Value::Array(vec![])
    );

    // The edge side of enrolment, through the library on the same folder.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let enrolled = runtime.block_on(async {
        let backend = dangan_hub::HubBackend::open(&data).unwrap();
        backend
            .enrol(EnrolRequest {
                code: code["code"].as_str().unwrap().into(),
                district: "330106".into(),
            })
            .await
            .unwrap()
    });
    let list = json(&hub(&["node", "list", "--json"], &data));
    assert_eq!(list[0]["id"], enrolled.node_id.as_str());
    assert_eq!(list[0]["district"], "330106");
    assert_eq!(list[0]["revoked"], false);
    assert!(list[0]["enrolled_at"].is_string());
    assert!(list[0]["last_contact"].is_string());

    let human = text(&hub(&["node", "list"], &data));
    assert!(human.contains("正常"), "{human}");
    let revoked = json(&hub(
        &["node", "revoke", &enrolled.node_id, "--json"],
        &data,
    ));
    assert_eq!(revoked["revoked"], true);
    let list = json(&hub(&["node", "list", "--json"], &data));
    assert_eq!(list[0]["revoked"], true);
    let unknown = hub(&["node", "revoke", "nobody"], &data);
    assert!(!unknown.status.success());

    let report = json(&hub(&["reconcile", "--json"], &data));
    assert_eq!(report["districts"][0]["district"], "330106");
    // The only node is revoked: nobody is in contact.
    assert_eq!(report["districts"][0]["stale"], true);
    let table = text(&hub(&["reconcile", "--lang", "en"], &data));
    assert!(table.contains("district 330106"), "{table}");
}

#[test]
fn reconcile_on_an_empty_hub() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    json(&hub(&["init", "--city", "330100", "--json"], &data));
    let report = json(&hub(&["reconcile", "--json"], &data));
    assert_eq!(report["districts"], Value::Array(vec![]));
    assert_eq!(report["stale_after_hours"], 24);
    let zh = text(&hub(&["reconcile"], &data));
    assert!(zh.contains("区县"), "{zh}");
    let en = text(&hub(&["reconcile", "--lang", "en"], &data));
    assert!(en.contains("no district"), "{en}");
    let filtered = json(&hub(
        &["reconcile", "--json", "--district", "330106"],
        &data,
    ));
    assert_eq!(filtered["districts"], Value::Array(vec![]));
    let uninitialised = hub(&["reconcile"], &dir.path().join("nothing"));
    assert!(!uninitialised.status.success());
}

#[test]
fn serve_reports_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    json(&hub(&["init", "--city", "330100", "--json"], &data));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dangan-hub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));
    let addr = ready["listening"].as_str().unwrap();
    // A bare HTTP/1.0 request, so no client library is needed here.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: hub\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_organisation_tree_is_kept_with_the_cli_and_takes_in_enrolled_districts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    // A hub made for 宁波市 (330200) that also takes in Hangzhou's districts.
    json(&hub(&["init", "--city", "330200", "--json"], &data));
    // A district enrolled before its city exists stands alone, named by
    // its code.
    json(&hub(
        &["node", "enrol", "--district", "330108", "--json"],
        &data,
    ));
    json(&hub(
        &["org", "add", "330100", "--name", "杭州市", "--json"],
        &data,
    ));
    let district = json(&hub(
        &[
            "org",
            "add",
            "330106",
            "--name",
            "西湖区",
            "--parent",
            "330100",
            "--json",
        ],
        &data,
    ));
    assert_eq!(district["level"], "district");
    json(&hub(
        &[
            "org",
            "add",
            "330106001",
            "--name",
            "北山街道",
            "--parent",
            "330106",
            "--json",
        ],
        &data,
    ));
    // A district enrolled now joins its city by its code.
    json(&hub(
        &["node", "enrol", "--district", "330105", "--json"],
        &data,
    ));
    let tree = json(&hub(&["org", "list", "--json"], &data));
    let roots: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["330100", "330108", "330200"]);
    let city = &tree[0];
    let children: Vec<&str> = city["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["code"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["330105", "330106"]);
    assert_eq!(city["children"][1]["children"][0]["name"], "北山街道");
    assert_eq!(tree[1]["name"], "330108", "named by its code until named");

    // The unattached district is named and attached; a wrong parent level,
    // a street office without a district and a second 330106 are refused.
    let named = json(&hub(
        &[
            "org",
            "set",
            "330108",
            "--name",
            "滨江区",
            "--parent",
            "330100",
            "--json",
        ],
        &data,
    ));
    assert_eq!(named["parent"], "330100");
    for bad in [
        &[
            "org",
            "add",
            "330106002",
            "--name",
            "x",
            "--parent",
            "330100",
        ][..],
        &["org", "add", "330106003", "--name", "x"][..],
        &[
            "org", "add", "330106", "--name", "again", "--parent", "330100",
        ][..],
        &["org", "add", "33x", "--name", "x"][..],
    ] {
        let out = hub(bad, &data);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(!out.stderr.is_empty(), "{bad:?} said nothing");
    }
    // An organisation something belongs to is disabled, not removed.
    let out = hub(&["org", "remove", "330100", "--lang", "en"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("child organisations"));
    let disabled = json(&hub(
        &["org", "set", "330108", "--status", "disabled", "--json"],
        &data,
    ));
    assert_eq!(disabled["status"], "disabled");
    json(&hub(&["org", "remove", "330106001", "--json"], &data));
    let text = text(&hub(&["org", "list", "--lang", "en"], &data));
    assert!(
        text.contains("330108 滨江区 [district] (disabled)"),
        "{text}"
    );
    assert!(!text.contains("330106001"), "{text}");
}

#[test]
fn users_are_added_with_a_password_from_stdin_granted_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    json(&hub(&["init", "--city", "330100", "--json"], &data));
    std::fs::write(
        data.join("hub.toml"),
        "[users]\nmemory_kib = 8\niterations = 1\n",
    )
    .unwrap();
    json(&hub(
        &[
            "org",
            "add",
            "330106",
            "--name",
            "西湖区",
            "--parent",
            "330100",
            "--json",
        ],
        &data,
    ));
    json(&hub(
        &[
            "org",
            "add",
            "330108",
            "--name",
            "滨江区",
            "--parent",
            "330100",
            "--json",
        ],
        &data,
    ));
    let add = |args: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dangan-hub"))
            .args(args)
            .env("DANGAN_HUB_DATA", &data)
            .env_remove("DANGAN_LANG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let user = json(&add(
        &[
            "user", "add", "li", "--role", "auditor", "--org", "330106", "--json",
        ],
        "a-good-password",
    ));
    assert_eq!(user["role"], "auditor");
    assert!(user.get("password_hash").is_none());
    // A short password, an unknown role, an unknown organisation: refused.
    for (args, password) in [
        (
            &["user", "add", "x1", "--role", "auditor", "--org", "330106"][..],
            "short",
        ),
        (
            &["user", "add", "x2", "--role", "boss", "--org", "330106"][..],
            "a-good-password",
        ),
        (
            &["user", "add", "x3", "--role", "clerk", "--org", "339999"][..],
            "a-good-password",
        ),
    ] {
        let out = add(args, password);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!out.stderr.is_empty());
    }
    let grant = json(&hub(
        &[
            "user",
            "grant",
            "li",
            "--org",
            "330108",
            "--until",
            "2099-12-31",
            "--reason",
            "专项稽核",
            "--json",
        ],
        &data,
    ));
    assert_eq!(grant["expires_at"], "2099-12-31T23:59:59Z");
    let past = hub(
        &[
            "user",
            "grant",
            "li",
            "--org",
            "330108",
            "--until",
            "2001-01-01",
            "--reason",
            "x",
        ],
        &data,
    );
    assert!(!past.status.success());
    let grants = json(&hub(&["user", "grants", "li", "--json"], &data));
    assert_eq!(grants.as_array().unwrap().len(), 1);
    let id = grants[0]["id"].as_i64().unwrap().to_string();
    json(&hub(&["user", "revoke-grant", &id, "--json"], &data));
    assert!(json(&hub(&["user", "grants", "--json"], &data))[0]["revoked_at"].is_string());
    let disabled = json(&hub(&["user", "disable", "li", "--json"], &data));
    assert_eq!(disabled["disabled"], true);
    let list = text(&hub(&["user", "list", "--lang", "en"], &data));
    assert!(list.contains("li (li) auditor 330106 (disabled)"), "{list}");
    // API tokens: printed once, listed without the token, revoked by name;
    // every change is in the audit trail.
    let made = json(&hub(
        &[
            "token", "create", "sib", "--role", "reviewer", "--org", "330106", "--days", "30",
            "--json",
        ],
        &data,
    ));
    let token = made["token"].as_str().unwrap();
    assert!(token.starts_with("dgt_"));
    let listed = text(&hub(&["token", "list", "--json"], &data));
    assert!(listed.contains("\"sib\"") && !listed.contains(token));
    json(&hub(&["token", "revoke", "sib", "--json"], &data));
    assert!(!hub(&["token", "revoke", "sib"], &data).status.success());
    let trail = text(&hub(&["audit", "list", "--json"], &data));
    for action in [
        "org.add",
        "user.add",
        "grant.add",
        "grant.revoke",
        "user.disable",
        "token.create",
        "token.revoke",
    ] {
        assert!(
            trail.contains(action),
            "{action} is not in the audit trail:\n{trail}"
        );
    }
    let verified = hub(&["audit", "verify", "--json"], &data);
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn init_makes_the_first_system_administrator_who_logs_in_once_given_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let out = hub(
        &["init", "--city", "330100", "--city-name", "杭州市"],
        &data,
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for word in ["管理令牌", "admin", "dangan-hub user passwd admin"] {
        assert!(said.contains(word), "init did not say {word}:\n{said}");
    }
    assert!(
        !hub(&["init", "--city", "330106"], &dir.path().join("x"))
            .status
            .success()
    );
    std::fs::write(
        data.join("hub.toml"),
        "[users]\nmemory_kib = 8\niterations = 1\n",
    )
    .unwrap();
    let users = json(&hub(&["user", "list", "--json"], &data));
    assert_eq!(users[0]["username"], "admin");
    assert_eq!(users[0]["role"], "system_admin");
    assert_eq!(users[0]["org"], "330100");
    // Another admin token is another credential of `admin`.
    let issued = json(&hub(&["admin-token", "--json"], &data));
    let admin_token = issued["admin_token"].as_str().unwrap().to_owned();
    assert_eq!(issued["user"], "admin");

    let mut child = Command::new(env!("CARGO_BIN_EXE_dangan-hub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let login = |password: &str| {
        let request = client
            .post(format!("{url}/api/v1/session"))
            .json(&serde_json::json!({ "username": "admin", "password": password }));
        runtime.block_on(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        })
    };
    // No password opens the account until one is set.
    for password in ["", "!"] {
        assert_eq!(login(password).0, 401);
    }
    let mut passwd = Command::new(env!("CARGO_BIN_EXE_dangan-hub"))
        .args(["user", "passwd", "admin", "--json"])
        .env("DANGAN_HUB_DATA", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(passwd.stdin.take().unwrap(), "the-admins-password").unwrap();
    json(&passwd.wait_with_output().unwrap());
    let (status, session) = login("the-admins-password");
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["user"]["role"], "system_admin");
    // The admin token issued by the CLI administers as `admin`.
    let status = runtime.block_on(
        client
            .get(format!("{url}/api/v1/reconcile"))
            .bearer_auth(&admin_token)
            .send(),
    );
    assert_eq!(status.unwrap().status(), 200);
    drop(client);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let trail = text(&hub(&["audit", "list", "--json"], &data));
    for action in ["admin_token.create", "user.passwd", "login"] {
        assert!(trail.contains(action), "{action} not audited:\n{trail}");
    }
}

#[test]
fn close_month_refuses_while_files_wait_and_archives_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    json(&hub(&["init", "--city", "330100", "--json"], &data));
    json(&hub(
        &[
            "org",
            "add",
            "330106",
            "--name",
            "西湖区",
            "--parent",
            "330100",
            "--json",
        ],
        &data,
    ));
    {
        let folder = dangan_hub::hub::HubFolder::open(&data).unwrap();
        let conn = folder.db.get().unwrap();
        for (number, state) in [("CLI-0001", "approved"), ("CLI-0002", "submitted")] {
            conn.execute(
                "INSERT INTO live_files(business_number, organisation, district, person_name,
                     state, created_by, created_at, updated_at)
                 VALUES (?1, '330106', '330106', '赵六', ?2, 'xi',
                         '2026-11-03T01:00:00Z', '2026-11-03T01:00:00Z')",
                rusqlite::params![number, state],
            )
            .unwrap();
        }
    }
    let refused = hub(&["close-month", "2026-11"], &data);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("月结被拒绝") && said.contains("CLI-0002"),
        "{said}"
    );
    let csv = dir.path().join("close.csv");
    let report = json(&hub(
        &[
            "close-month",
            "2026-11",
            "--force",
            "CLI-0002 下月处理",
            "--csv",
            csv.to_str().unwrap(),
            "--json",
        ],
        &data,
    ));
    assert_eq!(report["archived_files"], 1);
    assert_eq!(report["batches"], serde_json::json!(["LIVE-2026-11"]));
    assert_eq!(report["excluded"][0]["business_number"], "CLI-0002");
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(
        csv.contains("excluded,CLI-0002,330106,,,submitted"),
        "{csv}"
    );
    // The close's batch is signed by a pseudo-node, which is not an edge:
    // the node list does not show it.
    let nodes = json(&hub(&["node", "list", "--json"], &data));
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n["id"].as_str().unwrap().ends_with("-live")),
        "{nodes}"
    );
    let help = text(&hub(&["close-month", "--help"], &data));
    for word in ["--force", "--district", "--csv", "YYYY-MM"] {
        assert!(help.contains(word), "close-month --help lacks {word}");
    }
}
