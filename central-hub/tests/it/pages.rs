//! Page images of an archived business file over real HTTP: originals
//! streamed with ETag, ranges and 304; a G4 TIFF's browser view and
//! thumbnails made and kept; the watermarked PDF read back with poppler's
//! `pdfinfo` and `pdftotext`; scope and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::process::Command;

use dangan_shared::BlobId;
use dangan_sync::server::Backend;
use dangan_sync::wire::{CommitRequest, Manifest, ManifestFile, ManifestPage};
use image::{ImageEncoder, Luma};

use crate::backend::{Hub, Served, hub};

const PASSWORD: &str = "a-good-password";

fn jpeg_page() -> Vec<u8> {
    let page = image::RgbImage::from_fn(850, 1100, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 180])
    });
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    encoder.set_pixel_density(image::codecs::jpeg::PixelDensity::dpi(100));
    encoder
        .write_image(page.as_raw(), 850, 1100, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png_page() -> Vec<u8> {
    let page = image::GrayImage::from_fn(600, 800, |x, y| Luma([((x + y) % 256) as u8]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(page.as_raw(), 600, 800, image::ExtendedColorType::L8)
        .unwrap();
    out
}

/// A bilevel page of "text" lines, 1700×2200 (8.5×11 in at 200 dpi).
fn g4_page() -> (image::GrayImage, Vec<u8>) {
    let page = image::GrayImage::from_fn(1700, 2200, |x, y| {
        let ink = (y / 40) % 2 == 1 && (x / 11) % 4 != 0 && (200..1500).contains(&x);
        Luma([if ink { 0 } else { 255 }])
    });
    let tiff = dangan_testkit::containers::tiff_g4(std::slice::from_ref(&page), 200);
    (page, tiff)
}

fn manifest_page(seq: u32, bytes: &[u8], format: &str, size: (u32, u32), dpi: u32) -> ManifestPage {
    ManifestPage {
        barcodes: Vec::new(),
        blank: false,
        blob: BlobId::of(bytes),
        colour: if format == "tiff" { "bilevel" } else { "gray" }.into(),
        dpi: Some(dpi),
        format: format.into(),
        frame: 0,
        height: size.1,
        separator: false,
        seq,
        size: bytes.len() as u64,
        source: format!("扫描/{seq}.{format}"),
        width: size.0,
    }
}

/// Archives one business file of 西湖区 (330106) with a JPEG, a PNG and a
/// G4 TIFF page through the sync backend, and makes a user in 330106 (张三)
/// and one in 330108. Returns the file's id and the three blobs.
async fn archive(hub: &Hub) -> (i64, [Vec<u8>; 3], image::GrayImage) {
    let (node, _) = hub.node("330106").await;
    hub.node("330108").await;
    let (bilevel, tiff) = g4_page();
    let blobs = [jpeg_page(), png_page(), tiff];
    let pages = vec![
        manifest_page(1, &blobs[0], "jpeg", (850, 1100), 100),
        manifest_page(2, &blobs[1], "png", (600, 800), 100),
        manifest_page(3, &blobs[2], "tiff", (1700, 2200), 200),
    ];
    let manifest = Manifest {
        accepted_at: "2026-11-25T10:00:00Z".into(),
        batch: "330106-P1".into(),
        business_files: vec![ManifestFile {
            business_number: Some("YL2026000042".into()),
            business_type: Some("YL01".into()),
            category: Some("records".into()),
            date: Some("2026-11-25".into()),
            employer_id: None,
            organisation: "330106".into(),
            pages,
            person_id: None,
            person_name: Some("李四".into()),
            retention: Some("permanent".into()),
            seq: 1,
        }],
        business_type: Some("YL01".into()),
        bytes: blobs.iter().map(|b| b.len() as u64).sum(),
        district: "330106".into(),
        format: dangan_sync::wire::MANIFEST_FORMAT.into(),
        pages: 3,
    };
    let hash = dangan_sync::manifest_hash(&manifest).unwrap().1;
    hub.backend
        .offer(&node, manifest, hash.clone(), 100)
        .await
        .unwrap();
    for blob in &blobs {
        hub.upload(&node, blob).await;
    }
    hub.backend
        .commit(
            &node,
            CommitRequest {
                batch: "330106-P1".into(),
                manifest_hash: hash,
            },
        )
        .await
        .unwrap();
    let mut conn = hub.backend.db().get().unwrap();
    let cheap = dangan_shared::password::PasswordCost {
        memory_kib: 8,
        iterations: 1,
    };
    for (name, display, org) in [("zhang", "张三", "330106"), ("wang", "王五", "330108")] {
        dangan_hub::users::add(
            &mut conn,
            name,
            Some(display),
            dangan_hub::users::Role::Reviewer,
            org,
            PASSWORD,
            cheap,
        )
        .unwrap();
    }
    let id = conn
        .query_row("SELECT id FROM business_files", [], |row| row.get(0))
        .unwrap();
    (id, blobs, bilevel)
}

async fn login(client: &reqwest::Client, addr: std::net::SocketAddr, name: &str) -> String {
    let body: serde_json::Value = client
        .post(format!("http://{addr}/api/v1/session"))
        .json(&serde_json::json!({ "username": name, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("{tool} (Debian's poppler-utils, installed by .ci/run) cannot run: {err}")
        });
    assert!(output.status.success(), "{tool} failed: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn pages_stream_render_and_download_as_a_watermarked_pdf_within_scope() {
    let hub = hub();
    let (id, [jpeg, png, tiff], bilevel) = archive(&hub).await;
    let served = Served::start(&hub).await;
    let addr = served.addr;
    let client = reqwest::Client::new();
    let zhang = login(&client, addr, "zhang").await;
    let wang = login(&client, addr, "wang").await;
    let get = |path: String, token: &str, headers: &[(&str, &str)]| {
        let mut request = client
            .get(format!("http://{addr}/api/v1/files/{id}{path}"))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    // The original: its bytes, type, strong ETag and caching headers.
    let response = get("/pages/1".into(), &zhang, &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = format!("\"{}\"", BlobId::of(&jpeg).to_hex());
    assert_eq!(header(&response, "etag"), etag);
    assert_eq!(header(&response, "content-type"), "image/jpeg");
    assert_eq!(header(&response, "accept-ranges"), "bytes");
    let cache = header(&response, "cache-control");
    assert!(
        cache.starts_with("private, max-age=") && cache.ends_with("immutable"),
        "{cache}"
    );
    assert_eq!(response.bytes().await.unwrap(), jpeg);

    // One range is exactly those bytes; past the end is 416; the ETag
    // revalidates to 304; several ranges get everything.
    let response = get("/pages/1".into(), &zhang, &[("range", "bytes=10-99")])
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes 10-99/{}", jpeg.len())
    );
    assert_eq!(response.bytes().await.unwrap(), jpeg[10..100]);
    let response = get("/pages/1".into(), &zhang, &[("range", "bytes=-7")])
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap(), jpeg[jpeg.len() - 7..]);
    let past = format!("bytes={}-", jpeg.len());
    let response = get("/pages/1".into(), &zhang, &[("range", &past)])
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes */{}", jpeg.len())
    );
    let response = get("/pages/1".into(), &zhang, &[("if-none-match", &etag)])
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = get("/pages/1".into(), &zhang, &[("range", "bytes=0-1,5-6")])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), jpeg.len());
    let response = get("/pages/3".into(), &zhang, &[]).await.unwrap();
    assert_eq!(header(&response, "content-type"), "image/tiff");
    assert_eq!(response.bytes().await.unwrap(), tiff);

    // A PNG's view is the PNG; the G4 TIFF's view is a full-size 1-bit
    // PNG of the same pixels, kept under derived/ with its own ETag.
    let response = get("/pages/2/view".into(), &zhang, &[]).await.unwrap();
    assert_eq!(header(&response, "content-type"), "image/png");
    assert_eq!(response.bytes().await.unwrap(), png);
    let response = get("/pages/3/view".into(), &zhang, &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/png");
    let view_etag = header(&response, "etag");
    assert_eq!(
        view_etag,
        format!("\"{}-view\"", BlobId::of(&tiff).to_hex())
    );
    let view = response.bytes().await.unwrap();
    let shown = image::load_from_memory(&view).unwrap();
    assert_eq!((shown.width(), shown.height()), (1700, 2200));
    assert_eq!(shown.to_luma8(), bilevel);
    let hex = BlobId::of(&tiff).to_hex();
    let kept = hub
        .data
        .join(format!("derived/view/{}/{hex}.png", &hex[..2]));
    assert_eq!(std::fs::read(&kept).unwrap(), view);
    let response = get("/pages/3/view".into(), &zhang, &[("range", "bytes=0-15")])
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap(), view[..16]);
    let response = get(
        "/pages/3/view".into(),
        &zhang,
        &[("if-none-match", &view_etag)],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 304);
    // Derived data may be deleted: the view is made again.
    std::fs::remove_dir_all(hub.data.join("derived")).unwrap();
    let response = get("/pages/3/view".into(), &zhang, &[]).await.unwrap();
    assert_eq!(response.bytes().await.unwrap(), view);

    // Thumbnails: small JPEGs of every page.
    for (seq, height) in [(1, 258), (2, 266), (3, 258)] {
        let response = get(format!("/pages/{seq}/thumbnail"), &zhang, &[])
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "image/jpeg");
        let thumb = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (200, height), "page {seq}");
    }

    // The PDF: one page per page, the Chinese watermark with the viewer's
    // name on each, the font embedded as a subset (the whole font is 17 MB).
    let response = get("/pdf".into(), &zhang, &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/pdf");
    let disposition = header(&response, "content-disposition");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("YL2026000042.pdf"), "{disposition}");
    let pdf = response.bytes().await.unwrap();
    assert!(
        pdf.len() < 3_000_000,
        "{} bytes: the font is not subset",
        pdf.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let path = path.to_str().unwrap();
    // DANGAN_SAVE_PDF=DIR keeps a copy to look at.
    if let Ok(keep) = std::env::var("DANGAN_SAVE_PDF") {
        std::fs::write(std::path::Path::new(&keep).join("watermarked.pdf"), &pdf).unwrap();
    }
    let info = run("pdfinfo", &[path]);
    let pages = info.lines().find_map(|line| line.strip_prefix("Pages:"));
    assert_eq!(pages.map(str::trim), Some("3"), "{info}");
    assert!(info.contains("YL2026000042"), "the title: {info}");
    // Page 1: 850×1100 px at 100 dpi is 612×792 pt (US letter).
    let sizes = run("pdfinfo", &["-f", "1", "-l", "3", path]);
    assert!(sizes.contains("612 x 792 pts"), "{sizes}");
    for page in ["1", "2", "3"] {
        let text = run("pdftotext", &["-f", page, "-l", page, path, "-"]);
        assert!(
            text.contains("张三 (zhang)") && text.contains("仅供查阅"),
            "page {page} has no watermark: {text:?}"
        );
    }

    // A user of another district: 404 everywhere, like a missing page.
    for path in ["/pages/1", "/pages/3/view", "/pages/2/thumbnail", "/pdf"] {
        let response = get(path.into(), &wang, &[]).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers().get("etag").is_none());
    }
    let response = get("/pages/9".into(), &zhang, &[]).await.unwrap();
    assert_eq!(response.status(), 404);

    // The audit trail: the download (and the refused one), each delivered
    // original and view — not the ranges that do not start at 0, the 416,
    // the 304s or the thumbnails — and every refusal.
    let conn = hub.backend.db().get().unwrap();
    let entries = |action: &str| {
        dangan_hub::audit::query(
            &conn,
            &dangan_hub::audit::Filter {
                action: Some(action.into()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let downloads = entries("file.download");
    let summary: Vec<(&str, &str)> = downloads
        .iter()
        .map(|e| (e.actor.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(summary, [("zhang", "ok"), ("wang", "denied")]);
    let detail: serde_json::Value =
        serde_json::from_str(downloads[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["pages"], 3);
    assert!(detail["watermark"].as_str().unwrap().contains("张三"));
    assert_eq!(
        downloads[0].target.as_deref(),
        Some(id.to_string().as_str())
    );
    assert_eq!(downloads[0].address.as_deref(), Some("127.0.0.1"));
    let views: Vec<(String, String, String)> = entries("page.view")
        .iter()
        .map(|e| {
            let detail: serde_json::Value =
                serde_json::from_str(e.detail.as_deref().unwrap()).unwrap();
            (
                e.actor.clone(),
                e.result.clone(),
                format!(
                    "{}:{}",
                    detail["seq"],
                    detail["rendition"].as_str().unwrap()
                ),
            )
        })
        .collect();
    let expect = |actor: &str, result: &str, what: &str| {
        (actor.to_owned(), result.to_owned(), what.to_owned())
    };
    assert_eq!(
        views,
        [
            expect("zhang", "ok", "1:original"),
            expect("zhang", "ok", "1:original"), // several ranges: everything
            expect("zhang", "ok", "3:original"),
            expect("zhang", "ok", "2:view"),
            expect("zhang", "ok", "3:view"),
            expect("zhang", "ok", "3:view"), // bytes=0-15
            expect("zhang", "ok", "3:view"),
            expect("wang", "denied", "1:original"),
            expect("wang", "denied", "3:view"),
            expect("wang", "denied", "2:thumbnail"),
            expect("zhang", "denied", "9:original"),
        ]
    );
    drop(conn);
    drop(client);
    served.stop().await;
}
