//! `dangan-edge serve` as a real process on a free port, and logged-in
//! users of its API.
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

use super::Edge;

/// `dangan-edge serve` on a free port, stopped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub http: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(edge: &Edge) -> Self {
        Self::start_with(edge, &[], None)
    }

    /// Starts `serve` with extra arguments; with `ca` (a PEM file) it is
    /// reached over HTTPS, trusting that CA.
    pub fn start_with(edge: &Edge, extra: &[&str], ca: Option<&std::path::Path>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = edge
            .command(&["serve", "--listen", &listen])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let mut http = Client::builder().timeout(Duration::from_secs(120));
        let scheme = match ca {
            Some(ca) => {
                let pem = std::fs::read(ca).expect("read CA");
                http = http.add_root_certificate(
                    reqwest::Certificate::from_pem(&pem).expect("CA certificate"),
                );
                "https"
            }
            None => "http",
        };
        let server = Self {
            child,
            base: format!("{scheme}://{listen}"),
            http: http.build().expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server
            .http
            .get(server.url("/api/v1/openapi.json"))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = send(
            self.http
                .post(self.url("/api/v1/session"))
                .json(&json!({ "username": username, "password": password })),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

/// A logged-in user of the API.
pub struct Session<'a> {
    pub server: &'a Server,
    pub token: String,
}

impl Session<'_> {
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.server
            .http
            .request(method, self.server.url(path))
            .bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> Value {
        expect_ok(send(self.request(reqwest::Method::GET, path)), path)
    }

    pub fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(method, path).json(&body))
    }

    pub fn ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        expect_ok(self.call(method, path, body), path)
    }
}

pub fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().expect("request");
    let status = response.status();
    let text = response.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub fn expect_ok((status, body): (StatusCode, Value), what: &str) -> Value {
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

/// Makes the admin `chief` (password `chief-password`) with the CLI.
pub fn add_admin(edge: &Edge) {
    let mut child = edge
        .command(&["user", "add", "chief", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"chief-password\n")
        .expect("password");
    assert!(child.wait().expect("wait").success());
}
