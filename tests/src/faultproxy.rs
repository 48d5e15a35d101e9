//! A TCP proxy for HTTP/1.1 that misbehaves on purpose, between a real edge
//! and a real hub: it flips a byte inside request bodies, cuts connections
//! part way through a body, and stalls before a body. It also counts every
//! byte the client sends, so benchmarks can report bytes on the wire.
//!
//! Faults are only applied to request bodies of at least
//! [`Faults::min_body`] bytes (blob uploads), never to headers: the point is
//! to show that the hub verifies what it stores and the edge resends, not
//! to test HTTP parsing.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::pages::Rng;

/// What goes wrong, per request body (probabilities in [0, 1]).
#[derive(Debug, Clone)]
pub struct Faults {
    pub corrupt: f32,
    pub cut: f32,
    pub stall: f32,
    pub stall_for: Duration,
    pub min_body: u64,
}

impl Faults {
    /// A well-behaved proxy that only counts.
    pub fn none() -> Self {
        Self {
            corrupt: 0.0,
            cut: 0.0,
            stall: 0.0,
            stall_for: Duration::ZERO,
            min_body: u64::MAX,
        }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes the client sent (headers and bodies).
    pub client_bytes: AtomicU64,
    pub requests: AtomicU64,
    pub corrupted: AtomicU64,
    pub cuts: AtomicU64,
    pub stalls: AtomicU64,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    faults: Arc<Mutex<(Faults, Rng)>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let faults = Arc::new(Mutex::new((faults, Rng::new(seed))));
        let task = tokio::spawn({
            let stats = stats.clone();
            let faults = faults.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let stats = stats.clone();
                    let faults = faults.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            let _ = relay(client, server, stats, faults).await;
                        }
                    });
                }
            }
        });
        Ok(Self {
            addr,
            stats,
            faults,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the faults for requests that start from now on.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut guard) = self.faults.lock() {
            guard.0 = faults;
        }
    }

    pub fn client_bytes(&self) -> u64 {
        self.stats.client_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fault chosen for one body.
#[derive(Debug, Clone, Copy)]
enum Plan {
    None,
    /// Flip the byte at this body offset.
    Corrupt(u64),
    /// Close both connections when this many body bytes have gone through.
    Cut(u64),
}

enum State {
    Headers,
    /// A Content-Length body with this many bytes left.
    Body {
        left: u64,
    },
    ChunkSize,
    ChunkData {
        left: u64,
    },
    ChunkEnd,
    Trailers,
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    stats: Arc<Stats>,
    faults: Arc<Mutex<(Faults, Rng)>>,
) -> std::io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut pending: Vec<u8> = Vec::new();
    let mut read_buf = vec![0u8; 64 << 10];
    let mut state = State::Headers;
    let mut plan = Plan::None;
    let mut body_pos = 0u64;
    loop {
        let n = client_read.read(&mut read_buf).await?;
        if n == 0 {
            break;
        }
        stats.client_bytes.fetch_add(n as u64, Ordering::Relaxed);
        pending.extend_from_slice(&read_buf[..n]);
        // Forward everything that can be classified.
        let mut out: Vec<u8> = Vec::with_capacity(pending.len());
        let mut consumed = 0;
        let mut cut = false;
        while consumed < pending.len() && !cut {
            let rest = &pending[consumed..];
            match state {
                State::Headers => {
                    let Some(end) = find(rest, b"\r\n\r\n") else {
                        break;
                    };
                    let head = &rest[..end + 4];
                    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
                    let length = header(&text, "content-length").and_then(|v| v.parse().ok());
                    let chunked =
                        header(&text, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
                    out.extend_from_slice(head);
                    consumed += head.len();
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    body_pos = 0;
                    let (chosen, stall) = choose(&faults, length);
                    plan = chosen;
                    if let Some(pause) = stall {
                        stats.stalls.fetch_add(1, Ordering::Relaxed);
                        server_write.write_all(&out).await?;
                        out.clear();
                        tokio::time::sleep(pause).await;
                    }
                    state = match (chunked, length) {
                        (true, _) => State::ChunkSize,
                        (false, Some(0)) | (false, None) => State::Headers,
                        (false, Some(n)) => State::Body { left: n },
                    };
                }
                State::Body { left } => {
                    let take = (left as usize).min(rest.len());
                    cut = pass_body(&rest[..take], &mut out, &mut body_pos, plan, &stats);
                    consumed += take;
                    state = if left as usize == take {
                        State::Headers
                    } else {
                        State::Body {
                            left: left - take as u64,
                        }
                    };
                }
                State::ChunkSize => {
                    let Some(end) = find(rest, b"\r\n") else {
                        break;
                    };
                    let line = String::from_utf8_lossy(&rest[..end]).to_string();
                    let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or(0);
                    out.extend_from_slice(&rest[..end + 2]);
                    consumed += end + 2;
                    state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData { left: size }
                    };
                }
                State::ChunkData { left } => {
                    let take = (left as usize).min(rest.len());
                    cut = pass_body(&rest[..take], &mut out, &mut body_pos, plan, &stats);
                    consumed += take;
                    state = if left as usize == take {
                        State::ChunkEnd
                    } else {
                        State::ChunkData {
                            left: left - take as u64,
                        }
                    };
                }
                State::ChunkEnd => {
                    if rest.len() < 2 {
                        break;
                    }
                    out.extend_from_slice(&rest[..2]);
                    consumed += 2;
                    state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(end) = find(rest, b"\r\n") else {
                        break;
                    };
                    out.extend_from_slice(&rest[..end + 2]);
                    consumed += end + 2;
                    if end == 0 {
                        state = State::Headers;
                    }
                }
            }
        }
        pending.drain(..consumed);
        server_write.write_all(&out).await?;
        if cut {
            stats.cuts.fetch_add(1, Ordering::Relaxed);
            back.abort();
            return Ok(());
        }
    }
    let _ = server_write.shutdown().await;
    let _ = back.await;
    Ok(())
}

/// Forwards body bytes, applying the plan. Returns true when the
/// connection must be cut now.
fn pass_body(bytes: &[u8], out: &mut Vec<u8>, pos: &mut u64, plan: Plan, stats: &Stats) -> bool {
    let start = *pos;
    let end = start + bytes.len() as u64;
    *pos = end;
    match plan {
        Plan::Corrupt(at) if (start..end).contains(&at) => {
            let index = out.len() + (at - start) as usize;
            out.extend_from_slice(bytes);
            out[index] ^= 0x5a;
            stats.corrupted.fetch_add(1, Ordering::Relaxed);
            false
        }
        Plan::Cut(at) if (start..end).contains(&at) => {
            out.extend_from_slice(&bytes[..(at - start) as usize]);
            true
        }
        _ => {
            out.extend_from_slice(bytes);
            false
        }
    }
}

fn choose(faults: &Mutex<(Faults, Rng)>, length: Option<u64>) -> (Plan, Option<Duration>) {
    let Ok(mut guard) = faults.lock() else {
        return (Plan::None, None);
    };
    let (faults, rng) = &mut *guard;
    let faults = faults.clone();
    // Chunked bodies have no declared length: aim within the first
    // `min_body` bytes, which every body worth faulting has.
    let span = length.unwrap_or(faults.min_body);
    if span < faults.min_body || span == 0 {
        return (Plan::None, None);
    }
    let stall = (rng.unit() < faults.stall).then_some(faults.stall_for);
    let at = rng.next_u64() % span;
    let roll = rng.unit();
    let plan = if roll < faults.corrupt {
        Plan::Corrupt(at)
    } else if roll < faults.corrupt + faults.cut {
        Plan::Cut(at)
    } else {
        Plan::None
    };
    (plan, stall)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}
