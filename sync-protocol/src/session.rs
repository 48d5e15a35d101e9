//! Browser sessions shared by the edge's web UI and the hub's API: reading
//! a cookie, building a `Set-Cookie` value, the per-session CSRF token and
//! the CSRF guard in front of a router.
//!
//! A session is a random token kept by the server (hashed); the browser
//! holds it in an `HttpOnly`, `SameSite=Strict` cookie, marked `Secure`
//! when the server is reached over HTTPS. Every state-changing request a
//! browser authenticates with that cookie must also carry the session's
//! CSRF token (header `X-CSRF-Token`, or form field `csrf` in an urlencoded
//! form), and one that says it comes from another site (`Origin`,
//! `Sec-Fetch-Site`) is refused. Scripts sending `Authorization: Bearer`
//! need no CSRF token: a browser never adds that header on its own.
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The form field that carries a session's CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The largest form the CSRF guard reads to find its token.
const MAX_FORM: usize = 1024 * 1024;

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The bearer token of a request, if it sends one.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned())
}

/// A `Set-Cookie` value: `Path=/`, `SameSite=Strict`, `Max-Age` in seconds,
/// `HttpOnly` when scripts need not read it and `Secure` when the server is
/// reached over HTTPS. `value` empty with `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: u64, http_only: bool, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; SameSite=Strict; Max-Age={max_age}");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The CSRF token of a session: derived from the session token under a
/// per-product `context` (a BLAKE3 key-derivation context, e.g.
/// `"dangan-edge 2026-11 csrf token"`), so it needs no storage, dies with
/// the session, and one product's token never passes the other's check.
pub fn csrf_token(context: &str, session_token: &str) -> String {
    let key = blake3::derive_key(context, session_token.as_bytes());
    key[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a product's CSRF guard checks, and how it answers a refusal.
#[derive(Clone, Copy)]
pub struct CsrfPolicy {
    /// The session cookie's name.
    pub cookie: &'static str,
    /// The key-derivation context of [`csrf_token`].
    pub context: &'static str,
    /// Paths whose `POST` logs in: no session yet, so no token is asked
    /// (the origin check still applies).
    pub login_paths: &'static [&'static str],
    /// The answer to a refused request: the path, the request headers and
    /// why (one English sentence for logs and API clients).
    pub refuse: fn(&str, &HeaderMap, &str) -> Response,
}

impl CsrfPolicy {
    /// The CSRF token of `session_token` under this policy.
    pub fn token(&self, session_token: &str) -> String {
        csrf_token(self.context, session_token)
    }
}

/// Whether the request says it was sent by a page of another site: an
/// `Origin` that is not this host, or `Sec-Fetch-Site: cross-site`.
fn from_another_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if fetch_site.eq_ignore_ascii_case("cross-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !origin
        .to_str()
        .ok()
        .and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        })
        .is_some_and(|rest| !host.is_empty() && rest == host)
}

/// Middleware (`axum::middleware::from_fn_with_state(policy, csrf_guard)`)
/// refusing a state-changing request a browser could have been tricked
/// into sending: from another site, or authenticated by the session cookie
/// without the session's CSRF token. Safe methods pass; so do requests
/// with a bearer token and requests without the session cookie (nothing
/// authenticates them on a browser's behalf), and the login `POST`s.
pub async fn csrf_guard(
    State(policy): State<CsrfPolicy>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    if from_another_site(headers) {
        return refuse(
            &policy,
            &path,
            headers,
            "the request came from another site",
        );
    }
    let Some(session) = cookie(headers, policy.cookie) else {
        return next.run(request).await;
    };
    let logging_in =
        *request.method() == Method::POST && policy.login_paths.contains(&path.as_str());
    if bearer(headers).is_some() || logging_in {
        return next.run(request).await;
    }
    let expected = policy.token(&session);
    let header_token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if header_token == Some(expected.as_str()) {
        return next.run(request).await;
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return refuse(
            &policy,
            &path,
            headers,
            "the X-CSRF-Token header is missing or wrong",
        );
    }
    let headers = headers.clone();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return refuse(&policy, &path, &headers, "the form is too large");
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let token_ok = fields
        .iter()
        .any(|(key, value)| key == CSRF_FIELD && *value == expected);
    if token_ok {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    refuse(
        &policy,
        &path,
        &headers,
        "the form's CSRF token is missing or stale",
    )
}

fn refuse(policy: &CsrfPolicy, path: &str, headers: &HeaderMap, why: &str) -> Response {
    tracing::warn!(path, why, "CSRF check refused a request");
    (policy.refuse)(path, headers, why)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn csrf_tokens_belong_to_one_session_and_one_product() {
        let a = csrf_token("dangan-test csrf", "session-a");
        assert_eq!(a, csrf_token("dangan-test csrf", "session-a"));
        assert_ne!(a, csrf_token("dangan-test csrf", "session-b"));
        assert_ne!(a, csrf_token("dangan-other csrf", "session-a"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=b; s=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("t=1"));
        assert_eq!(cookie(&headers, "s").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "t").as_deref(), Some("1"));
        assert_eq!(cookie(&headers, "x"), None);
    }

    #[test]
    fn set_cookie_marks_secure_only_over_https() {
        assert_eq!(
            set_cookie("s", "v", 60, true, false),
            "s=v; Path=/; SameSite=Strict; Max-Age=60; HttpOnly"
        );
        assert!(set_cookie("s", "", 0, false, true).ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn other_sites_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("hub:8700"));
        assert!(!from_another_site(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://hub:8700"));
        assert!(!from_another_site(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(from_another_site(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(from_another_site(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(from_another_site(&headers));
    }
}
