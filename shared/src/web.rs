//! The look the edge's and the hub's web UIs share: one stylesheet and the
//! page viewer's script (zoom, rotate, fit, keyboard), embedded in both
//! binaries so the two UIs stay consistent.

/// The stylesheet of both UIs.
pub const APP_CSS: &str = include_str!("../web/app.css");

/// The page viewer: expects `#stage` holding `img#page-image`, optional
/// buttons `#zoom-in`, `#zoom-out`, `#rotate`, `#fit-width`, `#fit-page`,
/// `#zoom-level`, and links `#prev`/`#next` for ←/→.
pub const VIEWER_JS: &str = include_str!("../web/viewer.js");
