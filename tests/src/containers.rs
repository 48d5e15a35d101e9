//! Containers that scanner software writes pages in, built byte by byte so
//! tests and benchmarks need no checked-in binaries: multi-page and CCITT G4
//! TIFFs, image-only and vector PDFs, truncated files and header-only
//! decompression bombs.
//!
//! The writers aim at the structures real scanners produce, not at full
//! coverage of each format. Bilevel pages are thresholded at 128: darker
//! pixels are black.

use image::GrayImage;

/// The first `keep` fraction (0.0–1.0) of `bytes`, as a truncated download or
/// an interrupted copy would leave it.
pub fn truncate(bytes: &[u8], keep: f64) -> Vec<u8> {
    let keep = keep.clamp(0.0, 1.0);
    let len = ((bytes.len() as f64) * keep).floor() as usize;
    bytes[..len.min(bytes.len())].to_vec()
}

/// Encodes a page as CCITT Group 4 (T.6) data with the `fax` crate: rows
/// are not byte-aligned and the data ends with an EOFB.
pub fn g4_encode(image: &GrayImage) -> Vec<u8> {
    let width = u16::try_from(image.width()).expect("G4 pages are at most 65535 pixels wide");
    let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
    for row in image.rows() {
        let pels = row.map(|p| {
            if p.0[0] < 128 {
                fax::Color::Black
            } else {
                fax::Color::White
            }
        });
        encoder
            .encode_line(pels, width)
            .expect("VecWriter cannot fail");
    }
    encoder.finish().expect("VecWriter cannot fail").finish()
}

/// Packs a page into 1-bit rows (MSB first, rows padded to a byte), with
/// a set bit meaning `set_is_black` ? black : white.
pub fn pack_bilevel(image: &GrayImage, set_is_black: bool) -> Vec<u8> {
    let stride = image.width().div_ceil(8) as usize;
    let mut out = vec![0u8; stride * image.height() as usize];
    for (y, row) in image.rows().enumerate() {
        for (x, p) in row.enumerate() {
            let black = p.0[0] < 128;
            if black == set_is_black {
                out[y * stride + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// TIFF

enum TiffValue {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Rational(u32, u32),
}

impl TiffValue {
    fn type_and_count(&self) -> (u16, u32) {
        match self {
            TiffValue::Short(v) => (3, v.len() as u32),
            TiffValue::Long(v) => (4, v.len() as u32),
            TiffValue::Rational(..) => (5, 1),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            TiffValue::Short(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TiffValue::Long(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TiffValue::Rational(n, d) => [n.to_le_bytes(), d.to_le_bytes()].concat(),
        }
    }
}

struct TiffPage {
    tags: Vec<(u16, TiffValue)>,
    strip: Vec<u8>,
}

const TAG_STRIP_OFFSETS: u16 = 273;
const TAG_STRIP_BYTE_COUNTS: u16 = 279;

/// Writes a little-endian TIFF with one strip per page; the strip comes
/// before its IFD, as many scanners write it.
fn write_tiff(pages: Vec<TiffPage>) -> Vec<u8> {
    let mut out = b"II\x2a\x00\0\0\0\0".to_vec();
    let mut previous_next_pointer = 4usize;
    for page in pages {
        let strip_offset = out.len() as u32;
        out.extend_from_slice(&page.strip);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let mut tags = page.tags;
        tags.push((TAG_STRIP_OFFSETS, TiffValue::Long(vec![strip_offset])));
        tags.push((
            TAG_STRIP_BYTE_COUNTS,
            TiffValue::Long(vec![page.strip.len() as u32]),
        ));
        tags.sort_by_key(|(tag, _)| *tag);

        let ifd_offset = out.len();
        out[previous_next_pointer..previous_next_pointer + 4]
            .copy_from_slice(&(ifd_offset as u32).to_le_bytes());
        let ifd_len = 2 + 12 * tags.len() + 4;
        let mut extra_offset = ifd_offset + ifd_len;
        let mut extra = Vec::new();
        out.extend_from_slice(&(tags.len() as u16).to_le_bytes());
        for (tag, value) in &tags {
            let (kind, count) = value.type_and_count();
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            let bytes = value.bytes();
            if bytes.len() <= 4 {
                let mut field = [0u8; 4];
                field[..bytes.len()].copy_from_slice(&bytes);
                out.extend_from_slice(&field);
            } else {
                out.extend_from_slice(&(extra_offset as u32).to_le_bytes());
                extra_offset += bytes.len();
                extra.extend_from_slice(&bytes);
            }
        }
        previous_next_pointer = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&extra);
        if out.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

fn resolution_tags(dpi: u32) -> Vec<(u16, TiffValue)> {
    vec![
        (282, TiffValue::Rational(dpi, 1)),
        (283, TiffValue::Rational(dpi, 1)),
        (296, TiffValue::Short(vec![2])),
    ]
}

fn size_tags(image: &GrayImage) -> Vec<(u16, TiffValue)> {
    vec![
        (256, TiffValue::Long(vec![image.width()])),
        (257, TiffValue::Long(vec![image.height()])),
        (278, TiffValue::Long(vec![image.height()])),
    ]
}

/// A multi-page 8-bit gray TIFF (uncompressed, BlackIsZero), one strip per
/// page, with X/YResolution in dots per inch.
pub fn tiff_multipage(pages: &[GrayImage], dpi: u32) -> Vec<u8> {
    let pages = pages
        .iter()
        .map(|image| {
            let mut tags = size_tags(image);
            tags.extend(resolution_tags(dpi));
            tags.push((258, TiffValue::Short(vec![8])));
            tags.push((259, TiffValue::Short(vec![1])));
            tags.push((262, TiffValue::Short(vec![1])));
            tags.push((277, TiffValue::Short(vec![1])));
            TiffPage {
                tags,
                strip: image.as_raw().clone(),
            }
        })
        .collect();
    write_tiff(pages)
}

/// A multi-page bilevel TIFF with compression 4 (CCITT G4),
/// PhotometricInterpretation 0 (WhiteIsZero) and T6Options 0, as fax and
/// document scanners write it. Pages are thresholded at 128.
pub fn tiff_g4(pages: &[GrayImage], dpi: u32) -> Vec<u8> {
    let pages = pages
        .iter()
        .map(|image| {
            let mut tags = size_tags(image);
            tags.extend(resolution_tags(dpi));
            tags.push((258, TiffValue::Short(vec![1])));
            tags.push((259, TiffValue::Short(vec![4])));
            tags.push((262, TiffValue::Short(vec![0])));
            tags.push((266, TiffValue::Short(vec![1])));
            tags.push((277, TiffValue::Short(vec![1])));
            tags.push((293, TiffValue::Long(vec![0])));
            TiffPage {
                tags,
                strip: g4_encode(image),
            }
        })
        .collect();
    write_tiff(pages)
}

/// A single-page uncompressed 1-bit TIFF (BlackIsZero).
pub fn tiff_bilevel_uncompressed(image: &GrayImage, dpi: u32) -> Vec<u8> {
    let mut tags = size_tags(image);
    tags.extend(resolution_tags(dpi));
    tags.push((258, TiffValue::Short(vec![1])));
    tags.push((259, TiffValue::Short(vec![1])));
    tags.push((262, TiffValue::Short(vec![1])));
    tags.push((277, TiffValue::Short(vec![1])));
    write_tiff(vec![TiffPage {
        tags,
        strip: pack_bilevel(image, false),
    }])
}

// ---------------------------------------------------------------------------
// PNG / JPEG headers

/// CRC-32 (ISO-HDLC) as PNG uses it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A syntactically valid PNG (signature, IHDR for an 8-bit gray image, one
/// tiny IDAT, IEND) declaring `width`×`height` without the pixel data: the
/// decompression-bomb case.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib_stored(&[0, 0]));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A JPEG with SOI, a baseline SOF0 declaring `width`×`height` (one
/// component), an SOS and EOI but no real scan data: the decompression-bomb
/// case for JPEG.
pub fn jpeg_header_only(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8]);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&[1, 1, 0x11, 0]);
    out.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
    out.extend_from_slice(&[0x00, 0x00, 0xFF, 0xD9]);
    out
}

/// Wraps `data` in a zlib stream of stored (uncompressed) deflate blocks:
/// valid for FlateDecode and PNG without a compressor.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

// ---------------------------------------------------------------------------
// PDF

/// One page image of an image-only PDF, as scanner software embeds it.
#[derive(Debug, Clone)]
pub enum PdfPageImage {
    /// A JPEG file embedded as is (DCTDecode).
    Jpeg {
        bytes: Vec<u8>,
        width: u32,
        height: u32,
        gray: bool,
    },
    /// A bilevel page as CCITTFaxDecode with /K -1 (G4).
    G4 { image: GrayImage },
    /// An 8-bit gray page as FlateDecode with a PNG (Up) predictor.
    Flate { image: GrayImage },
    /// A bilevel page as JBIG2Decode: an embedded stream with a page
    /// information segment and an immediate generic region coded with MMR.
    Jbig2Mmr { image: GrayImage },
}

impl PdfPageImage {
    fn size(&self) -> (u32, u32) {
        match self {
            PdfPageImage::Jpeg { width, height, .. } => (*width, *height),
            PdfPageImage::G4 { image }
            | PdfPageImage::Flate { image }
            | PdfPageImage::Jbig2Mmr { image } => image.dimensions(),
        }
    }
}

/// Collects numbered PDF objects and writes them with a correct xref table.
#[derive(Default)]
struct PdfWriter {
    objects: Vec<Vec<u8>>,
}

impl PdfWriter {
    /// Reserves the next object number (numbers start at 1).
    fn reserve(&mut self) -> usize {
        self.objects.push(Vec::new());
        self.objects.len()
    }

    fn set(&mut self, number: usize, body: Vec<u8>) {
        self.objects[number - 1] = body;
    }

    fn add(&mut self, body: Vec<u8>) -> usize {
        let number = self.reserve();
        self.set(number, body);
        number
    }

    fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut body = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        body
    }

    fn finish(self, root: usize) -> Vec<u8> {
        let mut out = b"%PDF-1.5\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::new();
        for (index, body) in self.objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n", self.objects.len() + 1).as_bytes());
        out.extend_from_slice(b"0000000000 65535 f \n");
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                self.objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }
}

/// JBIG2 embedded stream (no file header): page information segment and an
/// immediate lossless generic region whose data is MMR (G4) coded.
pub fn jbig2_mmr_embedded(image: &GrayImage) -> Vec<u8> {
    let (width, height) = image.dimensions();
    let mut out = Vec::new();
    let mut segment = |number: u32, kind: u8, data: &[u8]| {
        out.extend_from_slice(&number.to_be_bytes());
        out.push(kind);
        out.push(0); // no referred-to segments
        out.push(1); // page association
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    };
    let mut page_info = Vec::new();
    page_info.extend_from_slice(&width.to_be_bytes());
    page_info.extend_from_slice(&height.to_be_bytes());
    page_info.extend_from_slice(&[0; 8]); // resolution unknown
    page_info.push(0); // flags: default pixel 0 (white), OR operator
    page_info.extend_from_slice(&[0, 0]); // no striping
    segment(0, 48, &page_info);

    let mut region = Vec::new();
    region.extend_from_slice(&width.to_be_bytes());
    region.extend_from_slice(&height.to_be_bytes());
    region.extend_from_slice(&[0; 8]); // x, y
    region.push(0); // external combination operator OR
    region.push(1); // generic region flags: MMR = 1
    region.extend_from_slice(&g4_encode(image));
    segment(1, 39, &region);
    segment(2, 49, &[]); // end of page
    out
}

fn image_xobject(page_image: &PdfPageImage) -> Vec<u8> {
    let (width, height) = page_image.size();
    match page_image {
        PdfPageImage::Jpeg { bytes, gray, .. } => {
            let space = if *gray { "/DeviceGray" } else { "/DeviceRGB" };
            PdfWriter::stream(
                &format!(
                    "/Type /XObject /Subtype /Image /Width {width} /Height {height} \
                     /ColorSpace {space} /BitsPerComponent 8 /Filter /DCTDecode"
                ),
                bytes,
            )
        }
        PdfPageImage::G4 { image } => PdfWriter::stream(
            &format!(
                "/Type /XObject /Subtype /Image /Width {width} /Height {height} \
                 /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode \
                 /DecodeParms << /K -1 /Columns {width} /Rows {height} /BlackIs1 false >>"
            ),
            &g4_encode(image),
        ),
        PdfPageImage::Flate { image } => {
            // PNG Up predictor: each row is prefixed by filter type 2 and
            // holds its difference to the row above.
            let row_len = width as usize;
            let raw = image.as_raw();
            let mut data = Vec::with_capacity(raw.len() + height as usize);
            for y in 0..height as usize {
                data.push(2);
                for x in 0..row_len {
                    let above = if y == 0 {
                        0
                    } else {
                        raw[(y - 1) * row_len + x]
                    };
                    data.push(raw[y * row_len + x].wrapping_sub(above));
                }
            }
            PdfWriter::stream(
                &format!(
                    "/Type /XObject /Subtype /Image /Width {width} /Height {height} \
                     /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode \
                     /DecodeParms << /Predictor 15 /Colors 1 /BitsPerComponent 8 /Columns {width} >>"
                ),
                &zlib_stored(&data),
            )
        }
        PdfPageImage::Jbig2Mmr { image } => PdfWriter::stream(
            &format!(
                "/Type /XObject /Subtype /Image /Width {width} /Height {height} \
                 /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /JBIG2Decode"
            ),
            &jbig2_mmr_embedded(image),
        ),
    }
}

/// An image-only PDF: each page is one image XObject drawn to cover the
/// page, whose MediaBox is the image size at `dpi` in points.
pub fn pdf_with_images(pages: &[PdfPageImage], dpi: u32) -> Vec<u8> {
    let mut writer = PdfWriter::default();
    let catalog = writer.reserve();
    let pages_id = writer.reserve();
    let mut kids = Vec::new();
    for page_image in pages {
        let (width, height) = page_image.size();
        let width_pt = f64::from(width) * 72.0 / f64::from(dpi);
        let height_pt = f64::from(height) * 72.0 / f64::from(dpi);
        let image = writer.add(image_xobject(page_image));
        let content = writer.add(PdfWriter::stream(
            "",
            format!("q {width_pt:.4} 0 0 {height_pt:.4} 0 0 cm /Im0 Do Q").as_bytes(),
        ));
        let page = writer.add(
            format!(
                "<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {width_pt:.4} {height_pt:.4}] \
                 /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>"
            )
            .into_bytes(),
        );
        kids.push(format!("{page} 0 R"));
    }
    writer.set(
        pages_id,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        )
        .into_bytes(),
    );
    writer.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages_id} 0 R >>").into_bytes(),
    );
    writer.finish(catalog)
}

/// A one-page PDF of `width_pt`×`height_pt` points with only vector content
/// (a thick black frame, a diagonal line, a filled box) and one line of
/// Helvetica text: no image, so a reader must render it.
pub fn pdf_vector_page(width_pt: f64, height_pt: f64) -> Vec<u8> {
    let mut writer = PdfWriter::default();
    let catalog = writer.reserve();
    let pages_id = writer.reserve();
    let font = writer.add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    let content = format!(
        "0 0 0 RG 8 w 36 36 {w} {h} re S\n\
         2 w 36 36 m {x1} {y1} l S\n\
         0 0 0 rg 72 72 144 72 re f\n\
         BT /F1 24 Tf 72 {ty} Td (Dangan 2024) Tj ET\n",
        w = width_pt - 72.0,
        h = height_pt - 72.0,
        x1 = width_pt - 36.0,
        y1 = height_pt - 36.0,
        ty = height_pt - 100.0,
    );
    let content = writer.add(PdfWriter::stream("", content.as_bytes()));
    let page = writer.add(
        format!(
            "<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {width_pt} {height_pt}] \
             /Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
        )
        .into_bytes(),
    );
    writer.set(
        pages_id,
        format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>").into_bytes(),
    );
    writer.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages_id} 0 R >>").into_bytes(),
    );
    writer.finish(catalog)
}

/// A PDF whose trailer names an /Encrypt dictionary (standard security
/// handler with a user password), which readers must refuse.
pub fn pdf_encrypted() -> Vec<u8> {
    let mut pdf = pdf_vector_page(200.0, 200.0);
    // Swap the plain trailer for one pointing at an encryption dictionary
    // that needs a password; the xref offsets before it stay valid.
    let trailer_at = pdf
        .windows(7)
        .rposition(|w| w == b"trailer")
        .expect("writer always emits a trailer");
    let startxref_at = pdf
        .windows(9)
        .rposition(|w| w == b"startxref")
        .expect("writer always emits startxref");
    let tail = pdf.split_off(startxref_at);
    pdf.truncate(trailer_at);
    pdf.extend_from_slice(
        b"trailer\n<< /Size 6 /Root 1 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>] \
          /Encrypt << /Filter /Standard /V 2 /R 3 /Length 128 /P -4 \
          /O <0000000000000000000000000000000000000000000000000000000000000000> \
          /U <0000000000000000000000000000000000000000000000000000000000000000> >> >>\n",
    );
    pdf.extend_from_slice(&tail);
    pdf
}

/// A PDF with a valid structure but an empty page tree.
pub fn pdf_no_pages() -> Vec<u8> {
    let mut writer = PdfWriter::default();
    let catalog = writer.reserve();
    let pages_id = writer.add(b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec());
    writer.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages_id} 0 R >>").into_bytes(),
    );
    writer.finish(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn sample_page(width: u32, height: u32, seed: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            if (x / 7 + y / 5 + seed).is_multiple_of(3) {
                Luma([0])
            } else {
                Luma([255])
            }
        })
    }

    #[test]
    fn truncate_keeps_fraction() {
        let bytes: Vec<u8> = (0..100).collect();
        assert_eq!(truncate(&bytes, 0.5).len(), 50);
        assert_eq!(truncate(&bytes, 0.0).len(), 0);
        assert_eq!(truncate(&bytes, 2.0).len(), 100);
    }

    #[test]
    fn crc32_matches_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn zlib_stored_round_trips_through_png_crate_via_image() {
        // A PNG built from the stored zlib stream must decode with `image`.
        let page = sample_page(70_000 / 100, 3, 0);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&page.width().to_be_bytes());
        ihdr.extend_from_slice(&page.height().to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        png_chunk(&mut out, b"IHDR", &ihdr);
        let mut raw = Vec::new();
        for row in page.as_raw().chunks(page.width() as usize) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        png_chunk(&mut out, b"IEND", &[]);
        let decoded = image::load_from_memory(&out)
            .expect("valid png")
            .into_luma8();
        assert_eq!(decoded, page);
    }

    #[test]
    fn g4_tiff_round_trips_through_image_tiff_decoder() {
        let pages = [sample_page(123, 45, 0), sample_page(123, 45, 1)];
        let bytes = tiff_g4(&pages, 300);
        // `image` decodes the first page with the `tiff` crate.
        let decoded = image::load_from_memory(&bytes)
            .expect("valid G4 tiff")
            .into_luma8();
        assert_eq!(decoded.dimensions(), (123, 45));
        for (a, b) in decoded.pixels().zip(pages[0].pixels()) {
            assert_eq!(a.0[0] < 128, b.0[0] < 128);
        }
    }

    #[test]
    fn multipage_tiff_first_page_decodes() {
        let pages = [sample_page(31, 17, 0), sample_page(31, 17, 2)];
        let bytes = tiff_multipage(&pages, 200);
        let decoded = image::load_from_memory(&bytes)
            .expect("valid tiff")
            .into_luma8();
        assert_eq!(decoded, pages[0]);
    }

    #[test]
    fn g4_decodes_with_fax_decoder() {
        let page = sample_page(64, 20, 1);
        let data = g4_encode(&page);
        let mut rows = Vec::new();
        fax::decoder::decode_g4(data.iter().copied(), 64, Some(20), |transitions| {
            rows.push(
                fax::decoder::pels(transitions, 64)
                    .map(|c| c == fax::Color::Black)
                    .collect::<Vec<_>>(),
            );
        })
        .expect("decodable");
        assert_eq!(rows.len(), 20);
        for (y, row) in rows.iter().enumerate() {
            for (x, black) in row.iter().enumerate() {
                assert_eq!(*black, page.get_pixel(x as u32, y as u32).0[0] < 128);
            }
        }
    }

    #[test]
    fn pdf_xref_offsets_point_at_objects() {
        let pdf = pdf_with_images(
            &[
                PdfPageImage::Flate {
                    image: sample_page(10, 10, 0),
                },
                PdfPageImage::G4 {
                    image: sample_page(10, 10, 1),
                },
            ],
            300,
        );
        let xref_at = pdf
            .windows(6)
            .rposition(|w| w == b"\nxref\n")
            .expect("xref");
        let table = String::from_utf8_lossy(&pdf[xref_at + 1..]).into_owned();
        let entries: Vec<usize> = table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .map(|l| l[..10].parse().expect("offset"))
            .collect();
        assert!(!entries.is_empty());
        for (index, offset) in entries.iter().enumerate() {
            assert!(pdf[*offset..].starts_with(format!("{} 0 obj", index + 1).as_bytes()));
        }
        assert!(pdf.ends_with(b"%%EOF\n"));
    }

    #[test]
    fn png_header_only_declares_size() {
        let png = png_header_only(60_000, 60_000);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            60_000
        );
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "IEND CRC");
    }
}
