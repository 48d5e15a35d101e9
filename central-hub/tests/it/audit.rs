//! The audit trail through the `dangan-hub` binary: entries from node
//! enrolment, checkpoints, CSV export, and `audit verify` catching an
//! edited entry, a forged insertion and deleted newest entries.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::Path;
use std::process::{Command, Output};

use dangan_hub::audit::{Entry, entry_hash};
use rusqlite::{Connection, params};
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
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "no JSON on stdout ({err}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_tree(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

/// A copy of the hub in `data` whose database an attacker opens directly,
/// dropping the append-only triggers first.
fn tampered(data: &Path, name: &str, tamper: impl FnOnce(&Connection)) -> std::path::PathBuf {
    let copy = data.parent().unwrap().join(name);
    copy_tree(data, &copy);
    let conn = Connection::open(copy.join("hub.db")).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    tamper(&conn);
    drop(conn);
    copy
}

fn verify_fails(data: &Path) -> Value {
    let output = hub(&["audit", "verify", "--json"], data);
    assert_eq!(output.status.code(), Some(1), "verify did not fail");
    let report = json(&output);
    assert_eq!(report["ok"], false);
    report
}

fn kinds(report: &Value) -> Vec<(i64, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["seq"].as_i64().unwrap_or(-1),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_trail_records_checkpoints_exports_and_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    ok(hub(&["init", "--city", "330100", "--json"], &data));
    // An empty trail verifies and has nothing to checkpoint.
    let empty = json(&ok(hub(&["audit", "checkpoint", "--json"], &data)));
    assert_eq!(empty["outcome"], "empty");
    for district in ["330106", "330108", "330110"] {
        ok(hub(&["node", "enrol", "--district", district], &data));
    }
    // A failed change is recorded too.
    assert!(!hub(&["node", "revoke", "330106-9"], &data).status.success());
    let written = json(&ok(hub(&["audit", "checkpoint", "--json"], &data)));
    assert_eq!(written["outcome"], "written");
    assert_eq!(written["checkpoint"]["seq"], 4);
    let again = json(&ok(hub(&["audit", "checkpoint", "--json"], &data)));
    assert_eq!(again["outcome"], "unchanged");
    ok(hub(&["node", "enrol", "--district", "330112"], &data));
    let lines = std::fs::read_to_string(data.join("audit/checkpoints.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1);

    // The untouched trail verifies, in Chinese by default.
    let report = json(&ok(hub(&["audit", "verify", "--json"], &data)));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        (report["entries"].as_i64(), report["checkpoints"].as_i64()),
        (Some(5), Some(1))
    );
    let text = String::from_utf8(ok(hub(&["audit", "verify"], &data)).stdout).unwrap();
    assert!(text.contains("审计日志校验通过"), "{text}");

    // Listing and CSV export.
    let entries = json(&ok(hub(&["audit", "list", "--json"], &data)));
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["actor"], "cli");
    assert_eq!(entries[0]["action"], "node.enrol");
    assert_eq!(entries[0]["target"], "330106");
    assert_eq!(entries[3]["action"], "node.revoke");
    assert_eq!(entries[3]["result"], "failed");
    let csv = String::from_utf8(ok(hub(&["audit", "list", "--csv"], &data)).stdout).unwrap();
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(rows[0].starts_with("seq,at,actor,actor_kind,address,action,target,result,detail"));
    assert!(rows[1].starts_with("1,") && rows[1].contains(",cli,cli,,node.enrol,330106,ok,"));
    let revokes = json(&ok(hub(
        &[
            "audit", "list", "--action", "node.*", "--actor", "cli", "--limit", "2", "--json",
        ],
        &data,
    )));
    assert_eq!(revokes.as_array().unwrap().len(), 2);
    let table =
        String::from_utf8(ok(hub(&["audit", "list", "--lang", "en"], &data)).stdout).unwrap();
    assert!(
        table.contains("node.revoke") && table.contains("failed"),
        "{table}"
    );

    // (a) An edited entry.
    let edited = tampered(&data, "edited", |conn| {
        conn.execute(
            "UPDATE audit_log SET detail = '{\"valid_hours\":1}' WHERE seq = 2",
            [],
        )
        .unwrap();
    });
    let report = verify_fails(&edited);
    assert_eq!(kinds(&report), vec![(2, "hash_mismatch".to_owned())]);
    let text =
        String::from_utf8(hub(&["audit", "verify", "--lang", "en"], &edited).stdout).unwrap();
    assert!(text.contains("entry 2 was edited"), "{text}");

    // (b) A forged entry in place of a deleted one, hashed correctly.
    let forged = tampered(&data, "forged", |conn| {
        let prev: String = conn
            .query_row("SELECT hash FROM audit_log WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        conn.execute("DELETE FROM audit_log WHERE seq = 2", [])
            .unwrap();
        let mut entry = Entry {
            seq: 2,
            at: "2026-01-01T00:00:00Z".to_owned(),
            actor: "cli".to_owned(),
            actor_kind: "cli".to_owned(),
            address: None,
            action: "node.enrol".to_owned(),
            target: Some("330199".to_owned()),
            result: "ok".to_owned(),
            detail: None,
            prev_hash: prev,
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        conn.execute(
            "INSERT INTO audit_log(seq, at, actor, actor_kind, address, action, target, result, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, NULL, ?8, ?9)",
            params![
                entry.seq, entry.at, entry.actor, entry.actor_kind, entry.action,
                entry.target, entry.result, entry.prev_hash, entry.hash
            ],
        )
        .unwrap();
    });
    let report = verify_fails(&forged);
    assert_eq!(kinds(&report), vec![(3, "broken_link".to_owned())]);

    // A deleted entry in the middle.
    let gap = tampered(&data, "gap", |conn| {
        conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
            .unwrap();
    });
    let report = verify_fails(&gap);
    assert_eq!(
        kinds(&report),
        vec![(4, "seq_gap".to_owned()), (4, "broken_link".to_owned())]
    );

    // (c) The newest entries deleted back to before the last checkpoint:
    // the chain that is left links up, only the checkpoint shows the loss.
    let truncated = tampered(&data, "truncated", |conn| {
        conn.execute("DELETE FROM audit_log WHERE seq >= 4", [])
            .unwrap();
    });
    let report = verify_fails(&truncated);
    assert_eq!(kinds(&report), vec![(4, "truncated".to_owned())]);
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("entries after seq 3 are missing"),
        "{message}"
    );
    let text = String::from_utf8(hub(&["audit", "verify"], &truncated).stdout).unwrap();
    assert!(text.contains("seq 3 之后的记录缺失"), "{text}");

    // The original is still intact.
    ok(hub(&["audit", "verify"], &data));
}
