//! Webhooks for the business system (系统接口): when a live business file's
//! pages are uploaded, when it is approved (accepted), and when the monthly
//! close archives it, the hub POSTs an event to the configured URL.
//!
//! Events are written to an outbox (`webhook_outbox`) in the same
//! transaction as the change they report, so none is lost to a crash, and
//! delivered by a background task in order of creation: a 2xx answer
//! delivers; anything else (or no answer in 10 s) is retried with
//! exponential backoff and jitter (5 s doubling to at most an hour) until
//! `[webhooks] max_attempts`, after which the event is marked failed
//! (`dangan-hub`'s log says so; the row keeps the last error).
//!
//! Each request carries `X-Dangan-Event`, `X-Dangan-Delivery` (the event's
//! id: receivers deduplicate on it, since a delivery whose answer was lost
//! is sent again), `X-Dangan-Timestamp` (Unix seconds) and
//! `X-Dangan-Signature: sha256=HEX`, the HMAC-SHA256 of
//! `TIMESTAMP.BODY` under the shared secret (`[webhooks] secret_file`).
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{self, StoreError};

/// The events sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A page was added to a live business file.
    PagesUploaded,
    /// A reviewer approved the file.
    Accepted,
    /// The monthly close archived the file.
    Archived,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::PagesUploaded => "live.pages_uploaded",
            Event::Accepted => "live.accepted",
            Event::Archived => "live.archived",
        }
    }
}

/// Appends an event about live file `number` to the outbox (on the
/// connection, so in the caller's transaction), when webhooks are on.
pub fn enqueue(
    conn: &Connection,
    enabled: bool,
    event: Event,
    number: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    if !enabled {
        return Ok(());
    }
    let now = store::now();
    conn.execute(
        "INSERT INTO webhook_outbox(event, business_number, body, created_at, next_at)
         VALUES (?1, ?2, '', ?3, ?3)",
        params![event.name(), number, now],
    )?;
    let id = conn.last_insert_rowid();
    let body = serde_json::json!({
        "id": id,
        "event": event.name(),
        "business_number": number,
        "created_at": now,
        "data": data,
    });
    conn.execute(
        "UPDATE webhook_outbox SET body = ?2 WHERE id = ?1",
        params![id, body.to_string()],
    )?;
    Ok(())
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let inner_key = padded.map(|b| b ^ 0x36);
    let outer_key = padded.map(|b| b ^ 0x5c);
    let inner = Sha256::new()
        .chain_update(inner_key)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_key)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The `X-Dangan-Signature` value of `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &str) -> String {
    let mac = hmac_sha256(secret, format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait before attempt `attempts + 1`: 5 s doubling, at most an hour,
/// with full jitter over its upper half.
pub fn backoff(attempts: u32) -> Duration {
    let base = 5u64.saturating_mul(1u64 << attempts.min(20)).min(3600);
    let mut random = [0u8; 2];
    let jitter = if getrandom::fill(&mut random).is_ok() {
        u64::from(u16::from_le_bytes(random)) % (base / 2 + 1)
    } else {
        0
    };
    Duration::from_secs(base / 2 + jitter)
}

/// Reads the shared secret, making a random one (owner-readable only) the
/// first time.
pub fn secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|err| std::io::Error::other(err.to_string()))?;
    let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, format!("{text}\n").as_bytes())?;
    tracing::info!(path = %path.display(), "made a webhook secret; give it to the business system");
    Ok(text.into_bytes())
}

/// One event due for delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub id: i64,
    pub event: String,
    pub body: String,
    pub attempts: u32,
}

/// Events due now, oldest first.
pub fn due(conn: &Connection, limit: u32) -> Result<Vec<Pending>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, event, body, attempts FROM webhook_outbox
         WHERE delivered_at IS NULL AND failed_at IS NULL AND next_at <= ?1
         ORDER BY id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![store::now(), limit], |row| {
        Ok(Pending {
            id: row.get(0)?,
            event: row.get(1)?,
            body: row.get(2)?,
            attempts: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records a delivery attempt's outcome: delivered, retried later, or
/// given up after `max_attempts`.
pub fn settle(
    conn: &Connection,
    pending: &Pending,
    outcome: Result<(), String>,
    max_attempts: u32,
) -> Result<(), StoreError> {
    let attempts = pending.attempts + 1;
    match outcome {
        Ok(()) => {
            conn.execute(
                "UPDATE webhook_outbox SET attempts = ?2, delivered_at = ?3, last_error = NULL
                 WHERE id = ?1",
                params![pending.id, attempts, store::now()],
            )?;
        }
        Err(error) if attempts >= max_attempts => {
            tracing::error!(id = pending.id, event = %pending.event, attempts, %error,
                "webhook event given up; the business system did not take it");
            conn.execute(
                "UPDATE webhook_outbox SET attempts = ?2, failed_at = ?3, last_error = ?4
                 WHERE id = ?1",
                params![pending.id, attempts, store::now(), error],
            )?;
        }
        Err(error) => {
            tracing::warn!(id = pending.id, event = %pending.event, attempts, %error,
                "webhook delivery failed; will retry");
            conn.execute(
                "UPDATE webhook_outbox SET attempts = ?2, next_at = ?3, last_error = ?4
                 WHERE id = ?1",
                params![
                    pending.id,
                    attempts,
                    store::time_after(backoff(attempts)),
                    error
                ],
            )?;
        }
    }
    Ok(())
}

/// Where and how events are sent (`[webhooks]` in hub.toml).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub secret: Vec<u8>,
    pub max_attempts: u32,
}

/// Sends the events that are due, oldest first, each on its own (one that
/// fails is retried later without holding back the others); returns how
/// many were delivered.
pub async fn deliver_due(
    db: &std::sync::Arc<store::Db>,
    client: &reqwest::Client,
    target: &Target,
) -> Result<usize, StoreError> {
    let pending = db.run(|conn| due(conn, 50)).await?;
    let mut delivered = 0;
    for event in pending {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sent = client
            .post(&target.url)
            .timeout(Duration::from_secs(10))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Dangan-Event", &event.event)
            .header("X-Dangan-Delivery", event.id.to_string())
            .header("X-Dangan-Timestamp", timestamp.to_string())
            .header(
                "X-Dangan-Signature",
                signature(&target.secret, timestamp, &event.body),
            )
            .body(event.body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("answered {}", answer.status())),
            Err(err) => Err(format!("not reached: {err}")),
        };
        if outcome.is_ok() {
            delivered += 1;
        }
        let max = target.max_attempts;
        db.run(move |conn| settle(conn, &event, outcome, max))
            .await?;
    }
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (test case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn backoff_grows_to_an_hour() {
        assert!(backoff(0) >= Duration::from_secs(2) && backoff(0) <= Duration::from_secs(5));
        assert!(backoff(3) >= Duration::from_secs(20) && backoff(3) <= Duration::from_secs(40));
        assert!(backoff(30) <= Duration::from_secs(3600));
        assert!(backoff(30) >= Duration::from_secs(1800));
    }
}
