//! The hub's storage behind the sync protocol, driven through the
//! `Backend` trait on real SQLite files and real blob folders, plus its
//! HTTP(S) admin endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dangan_hub::HubBackend;
use dangan_hub::{hub, nodes};
use dangan_shared::BlobId;
use dangan_sync::server::{Backend, BlobBody, NodeIdentity, ProtocolError};
use dangan_sync::wire::{
    CommitRequest, EdgeBatchState, EnrolRequest, ErrorCode, Manifest, ManifestBarcode,
    ManifestFile, ManifestPage, QueueReport, QueuedBatch, Receipt, ReconcileState,
};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use object_store::ObjectStoreExt;

pub(crate) struct Hub {
    _dir: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) backend: Arc<HubBackend>,
    pub(crate) admin_token: String,
}

/// The city every test hub is made for.
fn hangzhou() -> hub::City {
    hub::City {
        code: "330100".parse().unwrap(),
        name: Some("杭州市".into()),
    }
}

pub(crate) fn hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let made = hub::init(&data, &hangzhou()).unwrap();
    let backend = Arc::new(HubBackend::open(&data).unwrap());
    Hub {
        _dir: dir,
        data,
        backend,
        admin_token: made.admin_token,
    }
}

/// A hub whose hub.toml is edited by `edit` before it opens.
pub(crate) fn hub_with_config(edit: impl FnOnce(String) -> String) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let made = hub::init(&data, &hangzhou()).unwrap();
    let path = data.join(dangan_hub::config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    let backend = Arc::new(HubBackend::open(&data).unwrap());
    Hub {
        _dir: dir,
        data,
        backend,
        admin_token: made.admin_token,
    }
}

impl Hub {
    fn code(&self, district: &str, valid: Duration) -> String {
        let mut conn = self.backend.db().get().unwrap();
        nodes::create_enrolment_code(&mut conn, &district.parse().unwrap(), valid)
            .unwrap()
            .code
    }

    /// Enrols a node for `district` and returns it with its token.
    pub(crate) async fn node(&self, district: &str) -> (NodeIdentity, String) {
        let code = self.code(district, Duration::from_secs(3600));
        let enrolled = self
            .backend
            .enrol(EnrolRequest {
                code,
                district: district.into(),
            })
            .await
            .unwrap();
        let node = self.backend.authenticate(&enrolled.token).await.unwrap();
        (node, enrolled.token)
    }

    fn blob_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut pending = vec![self.data.join("blobs")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    fn blob_files_if_local(&self) -> Vec<PathBuf> {
        if self.data.join("blobs").is_dir() {
            self.blob_files()
        } else {
            Vec::new()
        }
    }

    fn count(&self, sql: &str) -> i64 {
        self.backend
            .db()
            .get()
            .unwrap()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    /// Uploads `bytes` whole.
    pub(crate) async fn upload(&self, node: &NodeIdentity, bytes: &[u8]) {
        let id = BlobId::of(bytes);
        let mut body = BlobBody::from_reader(bytes, u64::MAX);
        let status = self
            .backend
            .blob_write(node, id, 0, bytes.len() as u64, &mut body)
            .await
            .unwrap();
        assert!(status.complete);
    }
}

fn page(seq: u32, bytes: &[u8]) -> ManifestPage {
    ManifestPage {
        barcodes: vec![ManifestBarcode {
            format: "code128".into(),
            text: format!("YL2026{seq:06}"),
        }],
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
        source: format!("扫描/第{seq}页.jpg"),
        width: 2480,
    }
}

/// A manifest of one business file per `per_file` pages.
fn manifest(district: &str, batch: &str, pages: &[Vec<u8>], per_file: usize) -> Manifest {
    let mut files = Vec::new();
    for (index, chunk) in pages.chunks(per_file.max(1)).enumerate() {
        let first = (index * per_file) as u32;
        files.push(ManifestFile {
            business_number: Some(format!("YL2026{:06}", index + 1)),
            business_type: Some("YL01".into()),
            category: Some("records".into()),
            date: Some("2026-11-25".into()),
            employer_id: Some("E0001".into()),
            organisation: district.into(),
            pages: chunk
                .iter()
                .enumerate()
                .map(|(i, bytes)| page(first + i as u32 + 1, bytes))
                .collect(),
            person_id: Some("330106199001011234".into()),
            person_name: Some("张三".into()),
            retention: Some("permanent".into()),
            seq: index as u32 + 1,
        });
    }
    let mut distinct: Vec<&Vec<u8>> = pages.iter().collect();
    distinct.sort();
    distinct.dedup();
    Manifest {
        accepted_at: "2026-11-25T10:00:00Z".into(),
        batch: batch.into(),
        business_files: files,
        business_type: Some("YL01".into()),
        bytes: distinct.iter().map(|b| b.len() as u64).sum(),
        district: district.into(),
        format: dangan_sync::wire::MANIFEST_FORMAT.into(),
        pages: pages.len() as u64,
    }
}

fn hash(manifest: &Manifest) -> String {
    dangan_sync::manifest_hash(manifest).unwrap().1
}

fn code_of<T: std::fmt::Debug>(result: Result<T, ProtocolError>) -> ErrorCode {
    result.expect_err("expected an error").code
}

fn verify(receipt: &Receipt, hub_key: &str) {
    let key_bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hub_key[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let key = VerifyingKey::from_bytes(&key_bytes.try_into().unwrap()).unwrap();
    let sig: Vec<u8> = (0..64)
        .map(|i| u8::from_str_radix(&receipt.signature[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let sig = Signature::from_bytes(&sig.try_into().unwrap());
    let body = dangan_sync::jcs::to_canonical(&receipt.body).unwrap();
    key.verify(&body, &sig).expect("receipt signature verifies");
}

#[tokio::test]
async fn enrolment_codes_are_single_use_unexpired_and_district_bound() {
    let hub = hub();
    let code = hub.code("330106", Duration::from_secs(3600));
    let wrong = hub
        .backend
        .enrol(EnrolRequest {
            code: code.clone(),
            district: "330102".into(),
        })
        .await;
    assert_eq!(code_of(wrong), ErrorCode::Forbidden);
    let enrolled = hub
        .backend
        .enrol(EnrolRequest {
            code: code.clone(),
            district: "330106".into(),
        })
        .await
        .unwrap();
    assert_eq!(enrolled.district, "330106");
    assert_eq!(enrolled.hub_key, hub.backend.hub_key());
    assert_eq!(enrolled.hub_id, hub.backend.hub_id());
    let again = hub
        .backend
        .enrol(EnrolRequest {
            code,
            district: "330106".into(),
        })
        .await;
    assert_eq!(code_of(again), ErrorCode::Unauthorized);
    let expired = hub.code("330106", Duration::ZERO);
    let late = hub
        .backend
        .enrol(EnrolRequest {
            code: expired,
            district: "330106".into(),
        })
        .await;
    assert_eq!(code_of(late), ErrorCode::Unauthorized);
    let malformed = hub
        .backend
        .enrol(EnrolRequest {
            code: "x".into(),
            district: "33".into(),
        })
        .await;
    assert_eq!(code_of(malformed), ErrorCode::Malformed);
}

#[tokio::test]
async fn unknown_and_revoked_credentials_are_refused() {
    let hub = hub();
    let (node, token) = hub.node("330106").await;
    assert_eq!(node.district, "330106");
    assert_eq!(
        code_of(hub.backend.authenticate("dgn_unknown").await),
        ErrorCode::Unauthorized
    );
    let mut conn = hub.backend.db().get().unwrap();
    nodes::revoke(&mut conn, &node.node_id).unwrap();
    assert_eq!(
        code_of(hub.backend.authenticate(&token).await),
        ErrorCode::Unauthorized
    );
    let listed = nodes::list_nodes(&conn).unwrap();
    assert!(listed[0].revoked);
    assert!(listed[0].last_contact.is_some());
}

#[tokio::test]
async fn a_batch_transfers_with_resume_and_commits_once() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let second = b"second page".to_vec();
    let pages = vec![first.clone(), second.clone(), first.clone()];
    let m = manifest("330106", "330106-20261125", &pages, 2);
    let h = hash(&m);
    let offered = hub
        .backend
        .offer(&node, m.clone(), h.clone(), 1000)
        .await
        .unwrap();
    assert!(!offered.committed);
    assert_eq!(offered.missing_total, 2);
    assert_eq!(offered.missing.len(), 2);
    assert!(offered.missing[0].blob < offered.missing[1].blob);
    assert!(offered.next.is_none());
    assert!(hub.data.join(format!("offers/{h}.json")).is_file());

    // The first blob arrives in two parts with a cut in between.
    let id = BlobId::of(&first);
    let len = first.len() as u64;
    let mut cut = BlobBody::from_reader(&first[..40_000], u64::MAX);
    let status = hub
        .backend
        .blob_write(&node, id, 0, len, &mut cut)
        .await
        .unwrap();
    assert_eq!((status.offset, status.complete), (40_000, false));
    let status = hub.backend.blob_status(&node, id).await.unwrap();
    assert_eq!((status.offset, status.length), (40_000, Some(len)));
    let again = hub
        .backend
        .offer(&node, m.clone(), h.clone(), 1000)
        .await
        .unwrap();
    let held = again.missing.iter().find(|b| b.blob == id).unwrap();
    assert_eq!(held.offset, 40_000);
    let mut rest = BlobBody::from_reader(&first[40_000..], u64::MAX);
    let stale = hub.backend.blob_write(&node, id, 0, len, &mut rest).await;
    let err = stale.unwrap_err();
    assert_eq!(
        (err.code, err.offset),
        (ErrorCode::OffsetMismatch, Some(40_000))
    );
    let status = hub
        .backend
        .blob_write(&node, id, 40_000, len, &mut rest)
        .await
        .unwrap();
    assert!(status.complete);
    assert!(
        !hub.data
            .join(format!("partial/{}.partial", id.to_hex()))
            .exists()
    );

    // Corrupted bytes of the second blob are refused and forgotten.
    let id2 = BlobId::of(&second);
    let mut wrong = BlobBody::from_reader(&b"SECOND PAGE"[..], u64::MAX);
    let mismatch = hub.backend.blob_write(&node, id2, 0, 11, &mut wrong).await;
    assert_eq!(code_of(mismatch), ErrorCode::BlobHashMismatch);
    assert_eq!(hub.backend.blob_status(&node, id2).await.unwrap().offset, 0);
    let missing_commit = hub
        .backend
        .commit(
            &node,
            CommitRequest {
                batch: m.batch.clone(),
                manifest_hash: h.clone(),
            },
        )
        .await;
    assert_eq!(code_of(missing_commit), ErrorCode::MissingBlobs);
    assert_eq!(hub.count("SELECT COUNT(*) FROM batches"), 0);
    hub.upload(&node, &second).await;

    let request = CommitRequest {
        batch: m.batch.clone(),
        manifest_hash: h.clone(),
    };
    let receipt = hub.backend.commit(&node, request.clone()).await.unwrap();
    verify(&receipt, &hub.backend.hub_key());
    assert_eq!(receipt.body.pages, 3);
    assert_eq!(receipt.body.blobs, 2);
    assert_eq!(receipt.body.bytes, len + second.len() as u64);
    assert_eq!(receipt.body.node_id, node.node_id);
    assert_eq!(receipt.body.manifest_hash, h);
    assert_eq!(receipt.body.format, dangan_sync::wire::RECEIPT_FORMAT);
    let repeat = hub.backend.commit(&node, request).await.unwrap();
    assert_eq!(
        dangan_sync::jcs::to_canonical(&repeat).unwrap(),
        dangan_sync::jcs::to_canonical(&receipt).unwrap()
    );
    assert_eq!(hub.count("SELECT COUNT(*) FROM pages"), 3);
    assert_eq!(hub.count("SELECT COUNT(*) FROM business_files"), 2);
    assert_eq!(
        hub.count("SELECT COUNT(*) FROM business_files WHERE person_name = '张三'"),
        2
    );
    assert_eq!(hub.count("SELECT COUNT(*) FROM offers"), 0);
    assert!(hub.data.join(format!("manifests/{h}.json")).is_file());
    assert!(!hub.data.join(format!("offers/{h}.json")).exists());
    // Each blob is one uncompressed file named by its id.
    let files = hub.blob_files();
    assert_eq!(files.len(), 2);
    let stored = hub.backend.blob_store().local_path(&id).unwrap();
    assert_eq!(std::fs::read(stored).unwrap(), first);

    let offered = hub
        .backend
        .offer(&node, m.clone(), h.clone(), 10)
        .await
        .unwrap();
    assert!(offered.committed);
    assert!(offered.missing.is_empty());
    let listing = hub.backend.list_batches(&node, None, 100).await.unwrap();
    assert_eq!(listing.batches.len(), 1);
    assert_eq!(listing.batches[0].state, ReconcileState::Archived);
    assert_eq!(
        listing.batches[0].manifest_hash.as_deref(),
        Some(h.as_str())
    );

    // A changed manifest of the archived batch is a conflict.
    let mut changed = m.clone();
    changed.accepted_at = "2026-11-26T10:00:00Z".into();
    let conflict = hub
        .backend
        .offer(&node, changed.clone(), hash(&changed), 10)
        .await;
    assert_eq!(code_of(conflict), ErrorCode::BatchConflict);
}

#[tokio::test]
async fn a_failed_commit_leaves_nothing_and_the_retry_commits() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let pages = vec![b"p1".to_vec(), b"p2".to_vec()];
    let m = manifest("330106", "dup", &pages, 1);
    let h = hash(&m);
    hub.backend
        .offer(&node, m.clone(), h.clone(), 10)
        .await
        .unwrap();
    for bytes in &pages {
        hub.upload(&node, bytes).await;
    }
    // The database refuses the second page: the commit fails half way.
    let fail = "CREATE TRIGGER fail_second_page BEFORE INSERT ON pages
                WHEN (SELECT COUNT(*) FROM pages) >= 1
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END";
    hub.backend.db().get().unwrap().execute(fail, []).unwrap();
    let request = CommitRequest {
        batch: "dup".into(),
        manifest_hash: h,
    };
    let failed = hub.backend.commit(&node, request.clone()).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(hub.count("SELECT COUNT(*) FROM batches"), 0);
    assert_eq!(hub.count("SELECT COUNT(*) FROM business_files"), 0);
    assert_eq!(hub.count("SELECT COUNT(*) FROM pages"), 0);
    assert_eq!(hub.count("SELECT COUNT(*) FROM offers"), 1);

    let drop = "DROP TRIGGER fail_second_page";
    hub.backend.db().get().unwrap().execute(drop, []).unwrap();
    let receipt = hub.backend.commit(&node, request).await.unwrap();
    assert_eq!(receipt.body.pages, 2);
    assert_eq!(hub.count("SELECT COUNT(*) FROM batches"), 1);
    assert_eq!(hub.count("SELECT COUNT(*) FROM pages"), 2);
}

#[tokio::test]
async fn the_same_image_in_two_districts_is_stored_once() {
    let hub = hub();
    let (a, _) = hub.node("330106").await;
    let (b, _) = hub.node("330102").await;
    let shared = b"the same scanned form".to_vec();
    let ma = manifest("330106", "A1", std::slice::from_ref(&shared), 1);
    let mb = manifest("330102", "B1", &[shared.clone(), b"own".to_vec()], 1);
    let offered = hub
        .backend
        .offer(&a, ma.clone(), hash(&ma), 10)
        .await
        .unwrap();
    assert_eq!(offered.missing_total, 1);
    hub.upload(&a, &shared).await;
    hub.backend
        .commit(
            &a,
            CommitRequest {
                batch: "A1".into(),
                manifest_hash: hash(&ma),
            },
        )
        .await
        .unwrap();
    let offered = hub
        .backend
        .offer(&b, mb.clone(), hash(&mb), 10)
        .await
        .unwrap();
    assert_eq!(offered.missing_total, 1);
    assert_eq!(offered.missing[0].blob, BlobId::of(b"own"));
    // Writing the present blob again stores nothing and reads nothing.
    let mut body = BlobBody::from_reader(&shared[..], u64::MAX);
    let status = hub
        .backend
        .blob_write(&b, BlobId::of(&shared), 0, shared.len() as u64, &mut body)
        .await
        .unwrap();
    assert!(status.complete);
    hub.upload(&b, b"own").await;
    hub.backend
        .commit(
            &b,
            CommitRequest {
                batch: "B1".into(),
                manifest_hash: hash(&mb),
            },
        )
        .await
        .unwrap();
    assert_eq!(hub.blob_files().len(), 2);
    assert_eq!(hub.count("SELECT COUNT(*) FROM blobs"), 2);
    assert_eq!(hub.count("SELECT COUNT(*) FROM pages"), 3);
}

#[tokio::test]
async fn a_node_cannot_touch_another_districts_batches() {
    let hub = hub();
    let (a, _) = hub.node("330106").await;
    let (b, _) = hub.node("330102").await;
    let secret = b"district A's page".to_vec();
    let ma = manifest("330106", "A1", std::slice::from_ref(&secret), 1);
    let h = hash(&ma);
    hub.backend
        .offer(&a, ma.clone(), h.clone(), 10)
        .await
        .unwrap();
    assert_eq!(
        code_of(hub.backend.offer(&b, ma.clone(), h.clone(), 10).await),
        ErrorCode::Forbidden
    );
    let mut body = BlobBody::from_reader(&secret[..], u64::MAX);
    let upload = hub
        .backend
        .blob_write(&b, BlobId::of(&secret), 0, secret.len() as u64, &mut body)
        .await;
    assert_eq!(code_of(upload), ErrorCode::NotFound);
    assert_eq!(
        code_of(hub.backend.blob_status(&b, BlobId::of(&secret)).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(hub.backend.missing(&b, &h, None, 10).await),
        ErrorCode::Forbidden
    );
    hub.upload(&a, &secret).await;
    let commit = hub
        .backend
        .commit(
            &b,
            CommitRequest {
                batch: "A1".into(),
                manifest_hash: h.clone(),
            },
        )
        .await;
    assert_eq!(code_of(commit), ErrorCode::Forbidden);
    assert_eq!(hub.count("SELECT COUNT(*) FROM batches"), 0);
    let listing = hub.backend.list_batches(&b, None, 10).await.unwrap();
    assert!(listing.batches.is_empty());
}

#[tokio::test]
async fn one_upload_per_blob_at_a_time() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let bytes: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let m = manifest("330106", "busy", std::slice::from_ref(&bytes), 1);
    hub.backend
        .offer(&node, m.clone(), hash(&m), 10)
        .await
        .unwrap();
    let id = BlobId::of(&bytes);
    let (mut sender, receiver) = tokio::io::duplex(1024);
    let backend = Arc::clone(&hub.backend);
    let slow_node = node.clone();
    let slow = tokio::spawn(async move {
        backend
            .blob_write(
                &slow_node,
                id,
                0,
                4096,
                &mut BlobBody::from_reader(receiver, 4096),
            )
            .await
    });
    use tokio::io::AsyncWriteExt;
    sender.write_all(&bytes[..1000]).await.unwrap();
    // Wait until the slow upload holds the blob.
    let partial = hub.data.join(format!("partial/{}.partial", id.to_hex()));
    let started = Instant::now();
    while !partial.exists() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut body = BlobBody::from_reader(&bytes[..], u64::MAX);
    let second = hub.backend.blob_write(&node, id, 0, 4096, &mut body).await;
    assert_eq!(code_of(second), ErrorCode::BlobBusy);
    drop(sender);
    let status = slow.await.unwrap().unwrap();
    assert_eq!((status.offset, status.complete), (1000, false));
    let mut rest = BlobBody::from_reader(&bytes[1000..], u64::MAX);
    let status = hub
        .backend
        .blob_write(&node, id, 1000, 4096, &mut rest)
        .await
        .unwrap();
    assert!(status.complete);
}

#[tokio::test]
async fn old_partials_expire() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let bytes = vec![7u8; 1000];
    let m = manifest("330106", "exp", std::slice::from_ref(&bytes), 1);
    hub.backend
        .offer(&node, m.clone(), hash(&m), 10)
        .await
        .unwrap();
    let id = BlobId::of(&bytes);
    let mut half = BlobBody::from_reader(&bytes[..500], u64::MAX);
    hub.backend
        .blob_write(&node, id, 0, 1000, &mut half)
        .await
        .unwrap();
    hub.backend.maintain().await.unwrap();
    assert_eq!(
        hub.backend.blob_status(&node, id).await.unwrap().offset,
        500
    );
    let partial = hub.data.join(format!("partial/{}.partial", id.to_hex()));
    let old = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_modified(old)
        .unwrap();
    hub.backend.maintain().await.unwrap();
    assert!(!partial.exists());
    assert_eq!(hub.backend.blob_status(&node, id).await.unwrap().offset, 0);
}

#[tokio::test]
async fn reconciliation_tells_each_state_apart() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let archived = manifest("330106", "b-archived", &[b"1".to_vec()], 1);
    let divergent = manifest("330106", "b-divergent", &[b"2".to_vec()], 1);
    let in_flight = manifest("330106", "b-in-flight", &[b"3".to_vec()], 1);
    for m in [&archived, &divergent] {
        hub.backend
            .offer(&node, m.clone(), hash(m), 10)
            .await
            .unwrap();
    }
    hub.upload(&node, b"1").await;
    hub.upload(&node, b"2").await;
    for m in [&archived, &divergent] {
        hub.backend
            .commit(
                &node,
                CommitRequest {
                    batch: m.batch.clone(),
                    manifest_hash: hash(m),
                },
            )
            .await
            .unwrap();
    }
    hub.backend
        .offer(&node, in_flight.clone(), hash(&in_flight), 10)
        .await
        .unwrap();
    let reported = |batch: &str, state, manifest_hash: Option<String>| QueuedBatch {
        batch: batch.into(),
        state,
        manifest_hash,
        pages: 1,
        bytes: 1,
        last_error: None,
    };
    let report = QueueReport {
        batches: vec![
            reported(
                "b-archived",
                EdgeBatchState::Archived,
                Some(hash(&archived)),
            ),
            reported("b-divergent", EdgeBatchState::Queued, Some("0".repeat(64))),
            reported(
                "b-in-flight",
                EdgeBatchState::Syncing,
                Some(hash(&in_flight)),
            ),
            reported("b-queued", EdgeBatchState::Queued, None),
            reported("b-lost", EdgeBatchState::Archived, Some("1".repeat(64))),
        ],
    };
    hub.backend.report_queue(&node, report).await.unwrap();
    let all = hub.backend.reconcile(None).await.unwrap();
    assert_eq!(all.districts.len(), 1);
    let district = &all.districts[0];
    assert!(!district.stale);
    assert!(district.last_contact.is_some());
    let state = |name: &str| {
        district
            .batches
            .iter()
            .find(|b| b.batch == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(state("b-archived").state, ReconcileState::Archived);
    assert!(state("b-archived").advice.is_none());
    assert_eq!(state("b-divergent").state, ReconcileState::Divergent);
    assert!(state("b-divergent").advice.is_some());
    assert_eq!(state("b-in-flight").state, ReconcileState::InFlight);
    assert_eq!(state("b-in-flight").missing_blobs, Some(1));
    assert_eq!(state("b-queued").state, ReconcileState::Queued);
    assert_eq!(state("b-lost").state, ReconcileState::Divergent);
    assert_eq!(district.counts.archived, 1);
    assert_eq!(district.counts.divergent, 2);
    let json = serde_json::to_value(&all).unwrap();
    let states: Vec<&str> = json["districts"][0]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["archived", "divergent", "in_flight", "divergent", "queued"]
    );
    assert!(
        json["districts"][0]["batches"][1]["advice"]
            .as_str()
            .unwrap()
            .contains("compare the")
    );
    // A report that no longer names a batch drops it.
    hub.backend
        .report_queue(&node, QueueReport { batches: vec![] })
        .await
        .unwrap();
    let after = hub.backend.reconcile(Some("330106".into())).await.unwrap();
    assert!(
        after.districts[0]
            .batches
            .iter()
            .all(|b| b.batch != "b-queued")
    );
    assert!(
        hub.backend
            .reconcile(Some("330102".into()))
            .await
            .unwrap()
            .districts
            .is_empty()
    );
}

/// 100,000 pages (over 2,000 distinct blobs) offered, paged, transferred
/// and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_page_manifest_is_offered_and_committed() {
    let hub = hub();
    let (node, _) = hub.node("330106").await;
    let blobs: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let pages: Vec<Vec<u8>> = (0..100_000)
        .map(|i| blobs[i % blobs.len()].clone())
        .collect();
    let m = manifest("330106", "big", &pages, 20);
    drop(pages);
    let h = hash(&m);
    let started = Instant::now();
    let first = hub.backend.offer(&node, m, h.clone(), 700).await.unwrap();
    let offered_in = started.elapsed();
    assert_eq!(first.missing_total, 2000);
    assert_eq!(first.missing.len(), 700);
    let mut seen = first.missing.clone();
    let mut next = first.next;
    while let Some(after) = next {
        let page = hub
            .backend
            .missing(&node, &h, Some(after), 700)
            .await
            .unwrap();
        assert!(page.missing.first().unwrap().blob > after);
        seen.extend(page.missing);
        next = page.next;
    }
    assert_eq!(seen.len(), 2000);
    // A last page that is exactly full says there is no next page.
    let half = hub.backend.missing(&node, &h, None, 1000).await.unwrap();
    let rest = hub
        .backend
        .missing(&node, &h, half.next, 1000)
        .await
        .unwrap();
    assert_eq!((rest.missing.len(), rest.next), (1000, None));
    assert!(seen.windows(2).all(|w| w[0].blob < w[1].blob));
    for bytes in &blobs {
        hub.upload(&node, bytes).await;
    }
    let started = Instant::now();
    let receipt = hub
        .backend
        .commit(
            &node,
            CommitRequest {
                batch: "big".into(),
                manifest_hash: h,
            },
        )
        .await
        .unwrap();
    let committed_in = started.elapsed();
    assert_eq!(receipt.body.pages, 100_000);
    assert_eq!(receipt.body.blobs, 2000);
    assert_eq!(hub.count("SELECT COUNT(*) FROM pages"), 100_000);
    eprintln!("100,000 pages: offer {offered_in:?}, commit {committed_in:?}");
    assert!(
        offered_in < Duration::from_secs(20),
        "offer took {offered_in:?}"
    );
    assert!(
        committed_in < Duration::from_secs(20),
        "commit took {committed_in:?}"
    );
}

#[tokio::test]
async fn http_serves_health_and_the_admin_reconciliation() {
    let hub = hub();
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let refused = client
        .get(format!("{base}/api/v1/reconcile"))
        .bearer_auth("dga_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    hub.node("330106").await;
    let answer = client
        .get(format!("{base}/api/v1/reconcile?district=330106"))
        .bearer_auth(&hub.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["districts"][0]["district"], "330106");
    // Graceful shutdown waits for open connections: close the client's.
    drop(client);
    served.stop().await;
}

#[tokio::test]
async fn https_with_a_custom_ca() {
    let hub = hub();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dangan_hub::http::serve(
        Arc::clone(&hub.backend),
        listener,
        Some(dangan_hub::http::TlsFiles {
            cert: fixtures.join("hub.pem"),
            key: fixtures.join("hub.key.pem"),
        }),
        async {
            let _ = stopped.await;
        },
    ));
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    // Over HTTPS the session cookie is marked Secure.
    set_admin_password(&hub);
    let login = client
        .post(format!("https://localhost:{port}/api/v1/session"))
        .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    let cookie = set_cookie(&login);
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    // A client that does not trust the CA gets nowhere.
    let stranger = reqwest::Client::builder().build().unwrap();
    assert!(
        stranger
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    drop((client, stranger));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// The S3 storage backend against a real S3-compatible server. Runs only
/// when DANGAN_TEST_S3_ENDPOINT names one (e.g. `moto_server` on
/// http://127.0.0.1:5055) with an existing bucket DANGAN_TEST_S3_BUCKET
/// (default `dangan-test`); the credentials come from
/// DANGAN_HUB_S3_ACCESS_KEY_ID and DANGAN_HUB_S3_SECRET_ACCESS_KEY.
#[tokio::test]
async fn s3_storage_when_a_server_is_given() {
    let Ok(endpoint) = std::env::var("DANGAN_TEST_S3_ENDPOINT") else {
        eprintln!("DANGAN_TEST_S3_ENDPOINT not set: S3 backend not exercised");
        return;
    };
    let bucket = std::env::var("DANGAN_TEST_S3_BUCKET").unwrap_or_else(|_| "dangan-test".into());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    std::fs::create_dir_all(&data).unwrap();
    let prefix = format!("run-{}", std::process::id());
    std::fs::write(
        data.join("hub.toml"),
        format!(
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nendpoint = \"{endpoint}\"\n\
             bucket = \"{bucket}\"\nprefix = \"{prefix}\"\nallow_http = true\n"
        ),
    )
    .unwrap();
    let made = hub::init(&data, &hangzhou()).unwrap();
    let hub = Hub {
        backend: Arc::new(HubBackend::open(&data).unwrap()),
        data,
        _dir: dir,
        admin_token: made.admin_token,
    };
    let (node, _) = hub.node("330106").await;
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 249) as u8).collect();
    let small = b"small page".to_vec();
    let m = manifest("330106", "s3", &[big.clone(), small.clone()], 1);
    hub.backend
        .offer(&node, m.clone(), hash(&m), 10)
        .await
        .unwrap();
    let id = BlobId::of(&big);
    let mut first = BlobBody::from_reader(&big[..1 << 20], u64::MAX);
    let len = big.len() as u64;
    hub.backend
        .blob_write(&node, id, 0, len, &mut first)
        .await
        .unwrap();
    let mut rest = BlobBody::from_reader(&big[1 << 20..], u64::MAX);
    let status = hub
        .backend
        .blob_write(&node, id, 1 << 20, len, &mut rest)
        .await
        .unwrap();
    assert!(status.complete);
    hub.upload(&node, &small).await;
    hub.backend
        .commit(
            &node,
            CommitRequest {
                batch: "s3".into(),
                manifest_hash: hash(&m),
            },
        )
        .await
        .unwrap();
    let store = hub.backend.blob_store().object_store();
    for bytes in [&big, &small] {
        let key = dangan_hub::blobs::BlobStore::key(&BlobId::of(bytes));
        let stored = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), &bytes[..]);
    }
    assert!(hub.blob_files_if_local().is_empty());
}

#[tokio::test]
async fn organisations_through_the_admin_api() {
    let hub = hub();
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = client
            .request(method, url(path))
            .bearer_auth(&hub.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response
                .json::<serde_json::Value>()
                .await
                .unwrap_or_default();
            (status, body)
        }
    };
    use reqwest::Method;
    // The document lists what the router serves (see the unit test); it is
    // served without a token, nothing else is.
    let doc = client
        .get(url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);
    let anonymous = client.get(url("/api/v1/orgs")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // The hub's city is the root init made; another city can be added.
    let (status, city) = call(Method::GET, "/api/v1/orgs/330100", None).await;
    assert_eq!((status, city["name"].as_str()), (200, Some("杭州市")));
    let (status, city) = call(
        Method::POST,
        "/api/v1/orgs",
        Some(serde_json::json!({ "code": "330200", "name": "宁波市" })),
    )
    .await;
    assert_eq!(status, 201, "{city}");
    assert_eq!(city["level"], "city");
    let (status, _) = call(
        Method::POST,
        "/api/v1/orgs",
        Some(serde_json::json!({ "code": "330106", "name": "西湖区", "parent": "330100" })),
    )
    .await;
    assert_eq!(status, 201);
    // Bad input: a malformed code, an unknown field, a duplicate, a parent
    // that does not exist.
    for (body, expected, code) in [
        (
            serde_json::json!({ "code": "12", "name": "x" }),
            400,
            "malformed",
        ),
        (
            serde_json::json!({ "code": "330102", "name": "x", "colour": "red" }),
            400,
            "malformed",
        ),
        (
            serde_json::json!({ "code": "330106", "name": "x" }),
            409,
            "conflict",
        ),
        (
            serde_json::json!({ "code": "330102", "name": "x", "parent": "330900" }),
            404,
            "not_found",
        ),
    ] {
        let (status, answer) = call(Method::POST, "/api/v1/orgs", Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert_eq!(answer["error"], code);
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, changed) = call(
        Method::PATCH,
        "/api/v1/orgs/330106",
        Some(serde_json::json!({ "name": "西湖区（新）", "status": "disabled" })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["status"], "disabled");
    let (status, tree) = call(Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(status, 200);
    assert_eq!(tree[0]["children"][0]["name"], "西湖区（新）");
    let (status, _) = call(Method::DELETE, "/api/v1/orgs/330100", None).await;
    assert_eq!(status, 409, "the city still has a district");
    let (status, _) = call(Method::DELETE, "/api/v1/orgs/330106", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::GET, "/api/v1/orgs/330106", None).await;
    assert_eq!(status, 404);
    // Each change is in the audit trail, by the admin token.
    let trail = dangan_hub::audit::query(
        &hub.backend.db().get().unwrap(),
        &dangan_hub::audit::Filter {
            action: Some("org.*".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let actions: Vec<(&str, &str, &str, Option<&str>)> = trail
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.as_str(),
                e.actor_kind.as_str(),
                e.target.as_deref(),
            )
        })
        .collect();
    // The admin token acts as the account `admin`, told apart as a token.
    assert_eq!(
        actions,
        [
            ("org.add", "admin", "admin", Some("330200")),
            ("org.add", "admin", "admin", Some("330106")),
            ("org.update", "admin", "admin", Some("330106")),
            ("org.remove", "admin", "admin", Some("330106")),
        ]
    );
    drop(client);
    served.stop().await;
}

#[tokio::test]
async fn hub_users_log_in_get_locked_out_and_only_system_admins_administer() {
    use reqwest::Method;
    let hub = hub();
    // Two users of 西湖区: a system administrator and a reviewer.
    {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::orgs::add(&mut conn, "330106", "西湖区", Some("330100")).unwrap();
        let cheap = dangan_shared::password::PasswordCost {
            memory_kib: 8,
            iterations: 1,
        };
        for (name, role) in [
            ("root", dangan_hub::users::Role::SystemAdmin),
            ("zhang", dangan_hub::users::Role::Reviewer),
        ] {
            dangan_hub::users::add(
                &mut conn,
                name,
                None,
                role,
                "330106",
                "a-good-password",
                cheap,
            )
            .unwrap();
        }
    }
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let send =
        |method: Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>| {
            let mut request = client.request(method, url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response
                        .json::<serde_json::Value>()
                        .await
                        .unwrap_or_default(),
                )
            }
        };
    let login = |name: &str, password: &str| {
        send(
            Method::POST,
            "/api/v1/session",
            None,
            Some(serde_json::json!({ "username": name, "password": password })),
        )
    };

    let (status, root) = login("root", "a-good-password").await;
    assert_eq!(status, 201, "{root}");
    let root_token = root["token"].as_str().unwrap().to_owned();
    assert!(root_token.starts_with("dgs_"));
    let (status, me) = send(Method::GET, "/api/v1/session", Some(&root_token), None).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("system_admin")));
    // A system administrator's session administers, as the admin token does.
    let (status, list) = send(Method::GET, "/api/v1/users", Some(&root_token), None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3, "admin, root and zhang");
    let (status, _) = send(Method::GET, "/api/v1/orgs", Some(&hub.admin_token), None).await;
    assert_eq!(status, 200);
    // A reviewer's session does not.
    let (_, zhang) = login("zhang", "a-good-password").await;
    let zhang_token = zhang["token"].as_str().unwrap().to_owned();
    let (status, answer) = send(Method::GET, "/api/v1/users", Some(&zhang_token), None).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")));

    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..4 {
        let (status, answer) = login("zhang", "wrong-password").await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("bad_credentials"))
        );
    }
    let (status, answer) = login("zhang", "wrong-password").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (423, Some("locked")),
        "{answer}"
    );
    let (status, _) = login("zhang", "a-good-password").await;
    assert_eq!(status, 423);
    // An unknown user is refused like a wrong password.
    let (status, _) = login("nobody", "a-good-password").await;
    assert_eq!(status, 401);
    // Logging out ends the session.
    let (status, _) = send(Method::DELETE, "/api/v1/session", Some(&root_token), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(Method::GET, "/api/v1/session", Some(&root_token), None).await;
    assert_eq!(status, 401);
    // Every login attempt is in the audit trail with its result and address.
    let logins = dangan_hub::audit::query(
        &hub.backend.db().get().unwrap(),
        &dangan_hub::audit::Filter {
            action: Some("login".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let results: Vec<(&str, &str)> = logins
        .iter()
        .map(|e| (e.actor.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(results.len(), 9, "{results:?}");
    assert_eq!(results[0], ("root", "ok"));
    assert_eq!(
        results
            .iter()
            .filter(|(who, r)| *who == "zhang" && *r == "denied")
            .count(),
        6
    );
    assert!(
        logins
            .iter()
            .all(|e| e.address.as_deref() == Some("127.0.0.1"))
    );
    assert!(
        logins[6]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("locked"))
    );
    drop(client);
    served.stop().await;
}

#[tokio::test]
async fn users_see_business_files_of_their_scope_only_and_grants_expire() {
    use reqwest::Method;
    let hub = hub();
    hub.node("330106").await;
    hub.node("330108").await;
    // Two archived files, one per district (rows as a commit writes them).
    let (west, river) = {
        let mut conn = hub.backend.db().get().unwrap();
        for code in ["330106", "330108"] {
            dangan_hub::orgs::update(
                &mut conn,
                code,
                &dangan_hub::orgs::OrgPatch {
                    parent: Some("330100".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let cheap = dangan_shared::password::PasswordCost {
            memory_kib: 8,
            iterations: 1,
        };
        for (name, role) in [
            ("zhang", dangan_hub::users::Role::Reviewer),
            ("li", dangan_hub::users::Role::Auditor),
        ] {
            dangan_hub::users::add(
                &mut conn,
                name,
                None,
                role,
                "330106",
                "a-good-password",
                cheap,
            )
            .unwrap();
        }
        let mut ids = Vec::new();
        for district in ["330106", "330108"] {
            conn.execute(
                "INSERT INTO batches(district, batch, manifest_hash, accepted_at, node_id, pages,
                     blobs, bytes, committed_at, receipt)
                 VALUES (?1, 'B1', 'h', '2026-11-01T00:00:00Z', ?2, 0, 0, 0,
                         '2026-11-01T00:00:00Z', '{}')",
                rusqlite::params![district, format!("{district}-1")],
            )
            .unwrap();
            let batch = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO business_files(batch_id, seq, business_number, organisation, person_name)
                 VALUES (?1, 1, ?2, ?3, '张三丰')",
                rusqlite::params![batch, format!("YL{district}"), district],
            )
            .unwrap();
            ids.push(conn.last_insert_rowid());
        }
        (ids[0], ids[1])
    };
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let get = |path: String, token: String| {
        let request = client
            .request(Method::GET, format!("http://{addr}{path}"))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let login = |name: &str| {
        let request = client
            .post(format!("http://{addr}/api/v1/session"))
            .json(&serde_json::json!({ "username": name, "password": "a-good-password" }));
        async move {
            let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let zhang = login("zhang").await;
    let li = login("li").await;

    // The reviewer of 西湖区 sees its file, not 滨江区's; a guessed id and
    // an out-of-scope id answer the same.
    let (status, body) = get(format!("/api/v1/files/{west}"), zhang.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("YL330106"));
    let (out_of_scope, hidden) = get(format!("/api/v1/files/{river}"), zhang.clone()).await;
    let (missing, absent) = get("/api/v1/files/999999".into(), zhang.clone()).await;
    assert_eq!((out_of_scope, missing), (404, 404));
    assert_eq!(
        hidden.replace(&river.to_string(), "ID"),
        absent.replace("999999", "ID"),
        "out of scope must look like no such file"
    );
    assert!(!hidden.contains("YL330108"));

    // A grant of 滨江区 until tomorrow opens it to the auditor; once the
    // grant's end has passed it is closed again.
    let (status, _) = get(format!("/api/v1/files/{river}"), li.clone()).await;
    assert_eq!(status, 404);
    let tomorrow = dangan_hub::store::time_after(Duration::from_secs(86_400))[..10].to_owned();
    let grant = {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::users::grant(&mut conn, "li", "330108", &tomorrow, "专项稽核", "root").unwrap()
    };
    let (status, body) = get(format!("/api/v1/files/{river}"), li.clone()).await;
    assert_eq!(status, 200, "{body}");
    hub.backend
        .db()
        .get()
        .unwrap()
        .execute(
            "UPDATE grants SET expires_at = ?2 WHERE id = ?1",
            rusqlite::params![
                grant.id,
                dangan_hub::store::time_ago(Duration::from_secs(1))
            ],
        )
        .unwrap();
    let (status, _) = get(format!("/api/v1/files/{river}"), li.clone()).await;
    assert_eq!(status, 404, "an expired grant opens nothing");

    // Every look is in the audit trail, which the auditor may read (also as
    // CSV) and the reviewer may not.
    let (status, body) = get("/api/v1/audit?action=file.view".into(), li.clone()).await;
    assert_eq!(status, 200);
    let views: serde_json::Value = serde_json::from_str(&body).unwrap();
    let results: Vec<(&str, &str)> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [
            ("zhang", "ok"),
            ("zhang", "denied"),
            ("zhang", "denied"),
            ("li", "denied"),
            ("li", "ok"),
            ("li", "denied"),
        ]
    );
    let (status, csv) = get("/api/v1/audit?action=file.*&format=csv".into(), li.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 7, "a header and six entries:\n{csv}");
    let (status, _) = get("/api/v1/audit".into(), zhang.clone()).await;
    assert_eq!(status, 403);

    // A system's API token is scoped like a user of its role and
    // organisation, is audited as a token, and stops working when revoked.
    let (token, listed) = {
        let mut conn = hub.backend.db().get().unwrap();
        dangan_hub::users::create_token(
            &mut conn,
            "sib-system",
            dangan_hub::users::Role::Reviewer,
            "330108",
            None,
            "root",
        )
        .unwrap()
    };
    assert!(token.starts_with("dgt_"));
    assert_eq!(listed.org, "330108");
    let (status, _) = get(format!("/api/v1/files/{river}"), token.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = get(format!("/api/v1/files/{west}"), token.clone()).await;
    assert_eq!(status, 404);
    let (status, _) = get("/api/v1/users".into(), token.clone()).await;
    assert_eq!(status, 403, "a reviewer token does not administer");
    let by_token = dangan_hub::audit::query(
        &hub.backend.db().get().unwrap(),
        &dangan_hub::audit::Filter {
            actor: Some("token:sib-system".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(by_token.len(), 2);
    assert!(by_token.iter().all(|e| e.actor_kind == "token"));
    dangan_hub::users::revoke_token(&hub.backend.db().get().unwrap(), "sib-system").unwrap();
    let (status, _) = get(format!("/api/v1/files/{river}"), token.clone()).await;
    assert_eq!(status, 401);
    drop(client);
    served.stop().await;
}

const ADMIN_PASSWORD: &str = "the-admins-password";

/// Gives the account `admin` (made by init without one) a password, cheaply.
fn set_admin_password(hub: &Hub) {
    let cheap = dangan_shared::password::PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };
    let mut conn = hub.backend.db().get().unwrap();
    dangan_hub::users::set_password(&mut conn, "admin", ADMIN_PASSWORD, cheap).unwrap();
}

/// The one `Set-Cookie` header of a response.
fn set_cookie(response: &reqwest::Response) -> String {
    let all: Vec<_> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn browser_sessions_use_a_cookie_and_changes_need_the_csrf_token() {
    use reqwest::Method;
    let hub = hub();
    set_admin_password(&hub);
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let answer = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response
                .json::<serde_json::Value>()
                .await
                .unwrap_or_default(),
        )
    };
    let org = |code: &str| serde_json::json!({ "code": code, "name": code, "parent": "330100" });

    // Logging in answers the token, the CSRF token and the session cookie
    // (not Secure over plain HTTP).
    let login = client
        .post(url("/api/v1/session"))
        .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    let cookie = set_cookie(&login);
    let body: serde_json::Value = login.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(
        cookie,
        format!("dangan_hub_session={token}; Path=/; SameSite=Strict; Max-Age=43200; HttpOnly")
    );
    assert_eq!(csrf, dangan_hub::api::csrf_token(&token));
    let session = format!("dangan_hub_session={token}");
    let with_cookie = |method: Method, path: &str| {
        client
            .request(method, url(path))
            .header(reqwest::header::COOKIE, &session)
    };

    // The cookie authenticates reads; GET /api/v1/session repeats the CSRF token.
    let (status, me) = answer(with_cookie(Method::GET, "/api/v1/session")).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("admin")));
    assert_eq!(me["csrf_token"], csrf.as_str());
    // A change authenticated by the cookie alone, or with a wrong token, is refused.
    for request in [
        with_cookie(Method::POST, "/api/v1/orgs").json(&org("330102")),
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", "0".repeat(32))
            .json(&org("330102")),
        with_cookie(Method::DELETE, "/api/v1/session"),
    ] {
        let (status, body) = answer(request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("csrf")),
            "{body}"
        );
    }
    // With the header it goes through; a same-site Origin is fine.
    let (status, body) = answer(
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", &csrf)
            .header(reqwest::header::ORIGIN, format!("http://{addr}"))
            .json(&org("330102")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A bearer token needs no CSRF token, the session's nor the admin token.
    for (code, bearer) in [("330105", &token), ("330106", &hub.admin_token)] {
        let request = client
            .post(url("/api/v1/orgs"))
            .bearer_auth(bearer)
            .json(&org(code));
        let (status, body) = answer(request).await;
        assert_eq!(status, 201, "{body}");
    }
    // Another site is refused, with the right token, with a bearer token,
    // and when logging in.
    let evil = "https://evil.example";
    for request in [
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", &csrf)
            .header(reqwest::header::ORIGIN, evil)
            .json(&org("330108")),
        client
            .post(url("/api/v1/orgs"))
            .bearer_auth(&token)
            .header(reqwest::header::ORIGIN, evil)
            .json(&org("330108")),
        client
            .post(url("/api/v1/session"))
            .header(reqwest::header::ORIGIN, evil)
            .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD })),
        client
            .post(url("/api/v1/session"))
            .header("sec-fetch-site", "cross-site")
            .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD })),
    ] {
        let (status, body) = answer(request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("csrf")),
            "{body}"
        );
    }
    assert!(
        dangan_hub::orgs::get(&hub.backend.db().get().unwrap(), "330108")
            .unwrap()
            .is_none()
    );

    // Logging out (with the CSRF token) clears the cookie, and the cookie
    // opens nothing any more.
    let logout = with_cookie(Method::DELETE, "/api/v1/session")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(
        set_cookie(&logout),
        "dangan_hub_session=; Path=/; SameSite=Strict; Max-Age=0; HttpOnly"
    );
    let (status, _) = answer(with_cookie(Method::GET, "/api/v1/session")).await;
    assert_eq!(status, 401);
    let (status, _) = answer(
        with_cookie(Method::POST, "/api/v1/orgs")
            .header("x-csrf-token", &csrf)
            .json(&org("330108")),
    )
    .await;
    assert_eq!(status, 401);

    // Who did what: the session and the admin token both as `admin`, told
    // apart by the actor kind.
    let trail = dangan_hub::audit::query(
        &hub.backend.db().get().unwrap(),
        &dangan_hub::audit::Filter {
            action: Some("org.add".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let who: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|e| {
            (
                e.target.as_deref().unwrap(),
                e.actor.as_str(),
                e.actor_kind.as_str(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("330102", "admin", "user"),
            ("330105", "admin", "user"),
            ("330106", "admin", "admin"),
        ]
    );
    drop(client);
    served.stop().await;
}

/// The hub's HTTP service (plain HTTP) on a free port, until [`Served::stop`].
pub(crate) struct Served {
    pub(crate) addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), dangan_hub::http::ServeError>>,
}

impl Served {
    pub(crate) async fn start(hub: &Hub) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(dangan_hub::http::serve(
            Arc::clone(&hub.backend),
            listener,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Served { addr, stop, server }
    }

    /// Stops gracefully and checks the server ended without error.
    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}
