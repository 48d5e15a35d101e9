//! The CJK font that PDFs with Chinese text embed (feature `pdf`): the hub's
//! watermarked downloads (`[pdf] font` in `hub.toml`) and the edge's label
//! sheets (`[labels] font` in `edge.toml`). Both default to Debian's
//! fonts-wqy-zenhei, which `.ci/run` and the packages install.
//!
//! The font file is read once and kept: a CJK font is 10–20 MB and every
//! PDF needs it. A failure is not kept, so installing the font later needs
//! no restart.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use krilla::text::Font;

/// Debian's fonts-wqy-zenhei (文泉驿正黑).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc";
/// WenQuanYi Zen Hei, the first font of [`DEFAULT_FONT`].
pub const DEFAULT_FONT_INDEX: u32 = 0;

/// Where the font is configured — the `font` and `font_index` keys of a
/// section of a config file — so that an error tells the operator what to
/// fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FontSetting {
    /// The section, without brackets, e.g. `pdf`.
    pub section: &'static str,
    /// The config file, e.g. `hub.toml`.
    pub config_file: &'static str,
}

impl fmt::Display for FontSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] font in {}", self.section, self.config_file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FontError {
    /// The file cannot be read (missing, unreadable).
    #[error(
        "the PDF font {path} cannot be read ({source}): install Debian's fonts-wqy-zenhei, or set {setting} to a CJK TrueType/OpenType font"
    )]
    Missing {
        path: PathBuf,
        setting: FontSetting,
        #[source]
        source: std::io::Error,
    },
    /// The file is read but holds no font at that index (not a font, or an
    /// index past the end of a collection).
    #[error(
        "the PDF font {path} has no usable font at index {index}: check [{}] font and font_index in {}",
        .setting.section,
        .setting.config_file
    )]
    Invalid {
        path: PathBuf,
        index: u32,
        setting: FontSetting,
    },
}

impl FontError {
    /// The setting the operator has to fix.
    pub fn setting(&self) -> FontSetting {
        match self {
            FontError::Missing { setting, .. } | FontError::Invalid { setting, .. } => *setting,
        }
    }
}

static FONT: Mutex<Option<(PathBuf, u32, Font)>> = Mutex::new(None);

/// The font `index` of the file at `path` (configured by `setting`), read
/// on first use and kept; a later call with the same path and index is a
/// cheap clone. Blocking I/O.
pub fn load(path: &Path, index: u32, setting: FontSetting) -> Result<Font, FontError> {
    if let Ok(guard) = FONT.lock()
        && let Some((held_path, held_index, font)) = guard.as_ref()
        && held_path == path
        && *held_index == index
    {
        return Ok(font.clone());
    }
    let data = std::fs::read(path).map_err(|source| FontError::Missing {
        path: path.to_owned(),
        setting,
        source,
    })?;
    let font = Font::new(data.into(), index).ok_or_else(|| FontError::Invalid {
        path: path.to_owned(),
        index,
        setting,
    })?;
    if let Ok(mut guard) = FONT.lock() {
        *guard = Some((path.to_owned(), index, font.clone()));
    }
    Ok(font)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HUB: FontSetting = FontSetting {
        section: "pdf",
        config_file: "hub.toml",
    };
    const EDGE: FontSetting = FontSetting {
        section: "labels",
        config_file: "edge.toml",
    };

    #[test]
    fn a_missing_font_names_the_file_and_the_setting() {
        let err = load(Path::new("/nonexistent/cjk.ttc"), 0, EDGE).unwrap_err();
        assert_eq!(err.setting(), EDGE);
        let message = err.to_string();
        assert!(message.contains("/nonexistent/cjk.ttc"), "{message}");
        assert!(
            message.contains("set [labels] font in edge.toml to a CJK"),
            "{message}"
        );
        assert!(message.contains("fonts-wqy-zenhei"), "{message}");
    }

    #[test]
    fn a_file_that_is_no_font_names_the_index_and_the_setting() {
        let dir = std::env::temp_dir().join(format!("dangan-font-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-font.ttf");
        std::fs::write(&path, b"not a font").unwrap();
        let err = load(&path, 3, HUB).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let message = err.to_string();
        assert!(matches!(err, FontError::Invalid { index: 3, .. }));
        assert!(message.contains("not-a-font.ttf"), "{message}");
        assert!(
            message.contains("check [pdf] font and font_index in hub.toml"),
            "{message}"
        );
    }

    #[test]
    fn the_default_font_loads_and_is_kept() {
        let path = Path::new(DEFAULT_FONT);
        if !path.exists() {
            // Debian's fonts-wqy-zenhei is installed by .ci/run; a developer
            // machine without it still runs the other tests.
            return;
        }
        let first = load(path, DEFAULT_FONT_INDEX, HUB).unwrap();
        let second = load(path, DEFAULT_FONT_INDEX, EDGE).unwrap();
        assert_eq!(first, second);
        assert!(first.units_per_em() > 0.0);
    }
}
