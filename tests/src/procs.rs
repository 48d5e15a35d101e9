//! Real `dangan-hub` and `dangan-edge` processes for end-to-end tests.
//!
//! The binaries are the ones cargo built for this test run: they sit beside
//! the test executable's `deps` folder (`cargo test --workspace` builds
//! every binary before any test runs). `DANGAN_EDGE_BIN` and
//! `DANGAN_HUB_BIN` override the paths.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Path of a workspace binary built for this test run.
pub fn binary(name: &str) -> Result<PathBuf> {
    let var = format!("{}_BIN", name.replace('-', "_").to_uppercase());
    if let Ok(path) = std::env::var(&var) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("current exe")?;
    let mut dir = exe.parent().context("exe folder")?.to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; run the suite with `cargo test --workspace` (which builds it) or set {var}",
            path.display()
        );
    }
    Ok(path)
}

fn json_of(out: &Output, what: &str) -> Result<Value> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{what}: not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A hub data folder and, while serving, its process.
pub struct Hub {
    pub data: PathBuf,
    pub admin_token: String,
    pub addr: Option<std::net::SocketAddr>,
    child: Option<Child>,
    tls: bool,
    start_args: (Vec<String>, Vec<(String, String)>),
}

impl Hub {
    /// `dangan-hub init` in `data`, for the city of Hangzhou (330100).
    pub fn init(data: &Path) -> Result<Self> {
        let out = Self::command_in(data, &["init", "--city", "330100", "--json"])?.output()?;
        let value = json_of(&out, "dangan-hub init")?;
        let admin_token = value["admin_token"]
            .as_str()
            .context("init printed no admin_token")?
            .to_owned();
        Ok(Self {
            data: data.to_owned(),
            admin_token,
            addr: None,
            child: None,
            tls: false,
            start_args: Default::default(),
        })
    }

    fn command_in(data: &Path, args: &[&str]) -> Result<Command> {
        let mut command = Command::new(binary("dangan-hub")?);
        command
            .args(args)
            .arg("--data")
            .arg(data)
            .env("DANGAN_LANG", "en")
            .env_remove("RUST_LOG");
        Ok(command)
    }

    pub fn command(&self, args: &[&str]) -> Result<Command> {
        Self::command_in(&self.data, args)
    }

    /// Runs a CLI command with `--json` and parses its output.
    /// Makes new password hashes cheap (Argon2id with 8 KiB, one pass):
    /// tests and benchmarks log in many times. Before `start`.
    pub fn cheap_passwords(&self) -> Result<()> {
        let path = self.data.join("hub.toml");
        let text = std::fs::read_to_string(&path)?
            .replace("memory_kib = 19456", "memory_kib = 8")
            .replace("iterations = 2", "iterations = 1");
        std::fs::write(&path, text)?;
        Ok(())
    }

    /// 西湖区 (330106) with its street office 西溪街道 (330106001) in the
    /// organisation tree, and a clerk `name` of 西溪街道 with `password`.
    pub fn street_office_clerk(&self, name: &str, password: &str) -> Result<()> {
        self.json(&[
            "org",
            "add",
            "330106",
            "--name",
            "西湖区",
            "--parent",
            "330100",
        ])?;
        self.json(&[
            "org",
            "add",
            "330106001",
            "--name",
            "西溪街道",
            "--parent",
            "330106",
        ])?;
        self.with_password(
            &["user", "add", name, "--role", "clerk", "--org", "330106001"],
            password,
        )
    }

    /// Runs a command that reads a password from standard input (`user
    /// add`, `user passwd`) with `password`.
    pub fn with_password(&self, args: &[&str], password: &str) -> Result<()> {
        let mut child = self
            .command(args)?
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        std::io::Write::write_all(
            &mut child.stdin.take().context("stdin")?,
            format!("{password}\n").as_bytes(),
        )?;
        if !child.wait()?.success() {
            bail!("dangan-hub {args:?} failed");
        }
        Ok(())
    }

    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let out = self.command(args)?.arg("--json").output()?;
        json_of(&out, &format!("dangan-hub {args:?}"))
    }

    /// Starts `serve` on `listen` (use "127.0.0.1:0" the first time) and
    /// waits until it answers.
    pub fn start(&mut self, listen: &str) -> Result<()> {
        self.start_with(listen, &[], &[])
    }

    /// Starts `serve` with extra arguments (`--tls-cert`, ...) and
    /// environment variables.
    pub fn start_with(&mut self, listen: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
        let mut command = self.command(&["serve", "--listen", listen])?;
        command.args(args).envs(envs.iter().copied());
        self.tls = args.contains(&"--tls-cert");
        self.start_args = (
            args.iter().map(|a| a.to_string()).collect(),
            envs.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start dangan-hub serve")?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the hub did not say where it listens within 30 s");
            }
            let Some(line) = lines.next() else {
                bail!("the hub exited before listening: {:?}", child.wait());
            };
            let line = line?;
            if let Some(addr) = listening_address(&line) {
                break addr;
            }
        };
        // Keep draining stdout so the hub never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.addr = Some(addr);
        self.child = Some(child);
        Ok(())
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr.expect("hub not started"))
    }

    /// The process id of `serve` while it runs (for `/proc/PID/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Restarts on the same address with the same arguments and
    /// environment.
    pub fn restart(&mut self) -> Result<()> {
        let (args, envs) = self.start_args.clone();
        self.restart_with(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &envs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
    }

    /// Restarts on the same address with other arguments and environment.
    pub fn restart_with(&mut self, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
        self.kill();
        let addr = self.addr.context("never started")?.to_string();
        self.start_with(&addr, args, envs)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A one-time enrolment code for `district`.
    pub fn enrol_code(&self, district: &str) -> Result<String> {
        let value = self.json(&["node", "enrol", "--district", district])?;
        Ok(value["code"].as_str().context("no code")?.to_owned())
    }

    pub fn reconcile(&self) -> Result<Value> {
        self.json(&["reconcile"])
    }

    /// Files in the hub's blob store (complete blobs), by name.
    pub fn stored_blobs(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut stack = vec![self.data.join("blobs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                } else {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads "listening on http://ADDR" (or a bare socket address after
/// "listening") from a line of the hub's output.
fn listening_address(line: &str) -> Option<std::net::SocketAddr> {
    let lower = line.to_ascii_lowercase();
    let at = lower.find("listening")?;
    lower[at..]
        .split(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '=')
        .find_map(|word| word.parse().ok())
}

/// An edge data folder.
pub struct Edge {
    pub data: PathBuf,
}

impl Edge {
    /// `dangan-edge init` for `district` in `data`, with `config` appended
    /// to the default edge.toml.
    pub fn init(data: &Path, district: &str, config: &str) -> Result<Self> {
        let edge = Self {
            data: data.to_owned(),
        };
        edge.json(&["init", "--district", district])?;
        if !config.is_empty() {
            std::fs::write(data.join("edge.toml"), config)?;
        }
        Ok(edge)
    }

    pub fn command(&self, args: &[&str]) -> Result<Command> {
        let mut command = Command::new(binary("dangan-edge")?);
        command
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .env("DANGAN_LANG", "en")
            .env_remove("RUST_LOG");
        Ok(command)
    }

    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let out = self.command(args)?.arg("--json").output()?;
        json_of(&out, &format!("dangan-edge {args:?}"))
    }

    /// Runs with `--json` whatever the exit status; returns status and output.
    pub fn try_json(&self, args: &[&str]) -> Result<(bool, Value)> {
        let out = self.command(args)?.arg("--json").output()?;
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            Value::String(format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        });
        Ok((out.status.success(), value))
    }

    pub fn enrol(&self, hub_url: &str, code: &str) -> Result<Value> {
        self.json(&["enrol", "--hub", hub_url, "--code", code])
    }

    /// Ingests `dir` into `batch` and accepts the batch.
    pub fn ingest_and_accept(&self, batch: &str, dir: &Path) -> Result<Value> {
        let path = dir.display().to_string();
        let report = self.json(&["ingest", "--batch", batch, &path])?;
        self.json(&[
            "batch",
            "accept",
            batch,
            "--reason",
            "test: no QC in this test",
        ])?;
        Ok(report)
    }

    /// The state of a batch as `batch list` reports it.
    pub fn batch_state(&self, batch: &str) -> Result<String> {
        let list = self.json(&["batch", "list"])?;
        list.as_array()
            .context("batch list")?
            .iter()
            .find(|b| b["name"] == batch)
            .and_then(|b| b["state"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no batch {batch}"))
    }
}

/// VmHWM (peak resident set) of a live process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
