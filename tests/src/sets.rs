//! Whole fixture sets written to a folder: the quick-start demo batch and
//! the hard barcode set (with `labels.tsv`, in the format of
//! `../shared/bench/gen_barcode_pages.py`).
use std::path::Path;

use anyhow::{Context, Result};

use crate::containers::{self, PdfPageImage};
use crate::pages::{self, CodeSpec, PageSpec, Place, Symbology};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(dir.join(name), bytes).with_context(|| format!("cannot write {name}"))
}

/// A small demo batch: see `dangan-fixtures demo --help`.
pub fn write_demo(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let dpi = 200;
    let page = |seed: u64, codes: Vec<CodeSpec>| {
        pages::render_page(&PageSpec::with_codes(dpi, seed, codes))
    };
    let jpeg = |image: &image::DynamicImage| pages::encode_jpeg(image, 85, dpi);
    write(
        out,
        "0001.jpg",
        &jpeg(&pages::render_page(&pages::separator_sheet(dpi, 1))),
    )?;
    write(
        out,
        "0002.jpg",
        &jpeg(&page(
            2,
            vec![CodeSpec::new(
                Symbology::Code128,
                "YL2026110001",
                Place::TopRight,
            )],
        )),
    )?;
    write(out, "0003.jpg", &jpeg(&page(3, vec![])))?;
    write(
        out,
        "0004.png",
        &pages::encode_png(
            &image::DynamicImage::ImageLuma8(pages::blank_page(dpi, 4)),
            dpi,
        ),
    )?;
    write(
        out,
        "0005.jpg",
        &jpeg(&page(
            5,
            vec![CodeSpec::new(Symbology::Qr, "YL2026110002", Place::TopLeft)],
        )),
    )?;
    let tiff_pages = [
        page(
            6,
            vec![CodeSpec::new(
                Symbology::Code39,
                "YL2026110003",
                Place::TopCentre,
            )],
        )
        .to_luma8(),
        page(7, vec![]).to_luma8(),
        page(8, vec![]).to_luma8(),
    ];
    write(out, "0006.tif", &containers::tiff_g4(&tiff_pages, dpi))?;
    let form = jpeg(&page(
        9,
        vec![CodeSpec::new(
            Symbology::Code128,
            "YL2026110004",
            Place::TopRight,
        )],
    ));
    let (width, height) = pages::a4_px(dpi);
    let pdf = containers::pdf_with_images(
        &[
            PdfPageImage::Jpeg {
                bytes: form,
                width,
                height,
                gray: true,
            },
            PdfPageImage::Flate {
                image: page(10, vec![]).to_luma8(),
            },
        ],
        dpi,
    );
    write(out, "0007.pdf", &pdf)?;
    let broken = jpeg(&page(11, vec![]));
    write(out, "0008.jpg", &containers::truncate(&broken, 0.5))?;
    write(
        out,
        "0009.jpg",
        "扫描软件的说明文件，不是图像。\n".as_bytes(),
    )?;
    Ok(())
}

/// The hard barcode fixtures as 300-dpi JPEGs plus labels.tsv (expected
/// texts separated by `|`).
pub fn write_hard(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut labels = String::from("file\tsymbology\ttext\n");
    for (name, spec, expected) in pages::hard_fixtures() {
        let file = format!("{name}.jpg");
        write(
            out,
            &file,
            &pages::encode_jpeg(&pages::render_page(&spec), 90, spec.dpi),
        )?;
        let symbology = spec
            .codes
            .first()
            .map(|c| c.symbology.name())
            .unwrap_or("none");
        labels.push_str(&format!("{file}\t{symbology}\t{}\n", expected.join("|")));
    }
    write(out, "labels.tsv", labels.as_bytes())
}

/// `count` distinct small grayscale JPEG pages (`p0001.jpg`, ...) of about
/// `kib` KiB each, quick to make and to ingest: sync tests need many blobs,
/// not realistic forms. The same `seed` gives the same bytes.
pub fn write_plain_pages(
    out: &Path,
    count: usize,
    seed: u64,
    kib: usize,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // Noise compresses badly in JPEG: about one byte per pixel at q85.
    let side = ((kib * 1024) as f64).sqrt().max(16.0) as u32;
    let mut rng = pages::Rng::new(seed);
    let mut paths = Vec::with_capacity(count);
    for index in 0..count {
        let image = image::GrayImage::from_fn(side, side, |x, y| {
            let base = ((x / 8 + y / 8) % 2) as u8 * 60 + 120;
            image::Luma([base.wrapping_add((rng.next_u64() % 64) as u8)])
        });
        let name = format!("p{:04}.jpg", index + 1);
        write(
            out,
            &name,
            &pages::encode_jpeg(&image::DynamicImage::ImageLuma8(image), 85, 200),
        )?;
        paths.push(out.join(name));
    }
    Ok(paths)
}

/// A district's worth of scanning for the sync demo: `batches` folders
/// (`batch-01`, ...) of `pages` 200-dpi JPEG pages each, grouped into
/// business files that open with a form carrying its business number
/// (`YL2026BBFFFF`, Code 128 or QR) followed by one to three pages without
/// a code. Returns the batch folders.
pub fn write_district(out: &Path, batches: usize, pages: usize) -> Result<Vec<std::path::PathBuf>> {
    let dpi = 200;
    let mut folders = Vec::with_capacity(batches);
    for batch in 1..=batches {
        let dir = out.join(format!("batch-{batch:02}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut rng = pages::Rng::new(batch as u64);
        let (mut page, mut file) = (0usize, 0usize);
        while page < pages {
            file += 1;
            let number = format!("YL2026{batch:02}{file:04}");
            let symbology = if file % 3 == 0 {
                Symbology::Qr
            } else {
                Symbology::Code128
            };
            let follow = 1 + (rng.next_u64() % 3) as usize;
            for index in 0..=follow {
                if page == pages {
                    break;
                }
                page += 1;
                let codes = if index == 0 {
                    vec![CodeSpec::new(symbology, &number, Place::TopRight)]
                } else {
                    vec![]
                };
                let seed = (batch * 100_000 + page) as u64;
                let image = pages::render_page(&PageSpec::with_codes(dpi, seed, codes));
                write(
                    &dir,
                    &format!("{page:04}.jpg"),
                    &pages::encode_jpeg(&image, 85, dpi),
                )?;
            }
        }
        folders.push(dir);
    }
    Ok(folders)
}
