//! The look the edge's and the hub's web UIs share: one stylesheet and the
//! page viewer's script (zoom, rotate, fit, keyboard), embedded in both
//! binaries so the two UIs stay consistent.

/// The stylesheet of both UIs.
pub const APP_CSS: &str = include_str!("../web/app.css");

/// The page viewer: expects `#stage` holding `img#page-image`, optional
/// buttons `#zoom-in`, `#zoom-out`, `#rotate`, `#fit-width`, `#fit-page`,
/// `#zoom-level`, and links `#prev`/`#next` for ←/→.
pub const VIEWER_JS: &str = include_str!("../web/viewer.js");

use maud::{Markup, html};

/// The viewer's toolbar above `#stage`: the links to the previous and
/// next page (`#prev`, `#next`; also ←/→) and the zoom, fit and rotate
/// buttons [`VIEWER_JS`] drives. Chinese when `zh`, else English.
pub fn viewer_bar(zh: bool, prev: Option<&str>, next: Option<&str>) -> Markup {
    let pick = |c: &'static str, e: &'static str| if zh { c } else { e };
    html! {
        div.viewer-bar {
            @if let Some(prev) = prev { a #prev.button href=(prev) { "← " (pick("上一页", "Previous")) } }
            @if let Some(next) = next { a #next.button href=(next) { (pick("下一页", "Next")) " →" } }
            button #zoom-in type="button" title="+" { (pick("放大", "Zoom in")) " +" }
            button #zoom-out type="button" title="-" { (pick("缩小", "Zoom out")) " −" }
            button #fit-width type="button" title="w" { (pick("适合宽度", "Fit width")) " (W)" }
            button #fit-page type="button" title="0" { (pick("整页", "Whole page")) " (0)" }
            button #rotate type="button" title="r" { (pick("旋转", "Rotate")) " ↻ (R)" }
            span #zoom-level.muted {}
        }
    }
}

/// The viewer's keyboard help.
pub fn viewer_keys(zh: bool) -> Markup {
    html! {
        p.muted {
            @if zh { "键盘：←/→ 翻页，+/− 缩放，W 适合宽度，0 整页，R 旋转" }
            @else { "Keys: ←/→ page, +/− zoom, W fit width, 0 whole page, R rotate" }
        }
    }
}

/// A whole page with one message (errors, refusals) that needs no session:
/// `status` with its reason as the heading, the message, and a link back
/// to the start page labelled `back`.
pub fn message_markup(
    status: u16,
    reason: &str,
    message: &str,
    css_url: &str,
    back: &str,
) -> Markup {
    html! {
        (maud::DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (status) }
                link rel="stylesheet" href=(css_url);
            }
            body {
                main.message {
                    h1 { (status) " " (reason) }
                    p.error { (message) }
                    p { a href="/" { (back) } }
                }
            }
        }
    }
}

/// The signed-in user's two forms in the top bar: switch the language
/// (to English when `zh`, else to Chinese) and log out, each carrying the
/// session's CSRF token.
pub fn session_forms(zh: bool, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action="/lang" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="lang" value=(if zh { "en" } else { "zh" });
            button #lang-switch type="submit" { (if zh { "English" } else { "中文" }) }
        }
        form.inline method="post" action="/logout" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (if zh { "退出" } else { "Log out" }) }
        }
    }
}
