//! Webhooks: a POST of a JSON array of envelopes per batch, signed.
//!
//! The `ethgate-signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256
//! of "<t>.<body>" with the sink's secret>`. A receiver recomputes it with
//! [`verify`] and refuses old timestamps, so a captured request cannot be
//! replayed later. Any 2xx is the ack; anything else is a failed batch that
//! the dispatcher retries.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ethgate_store::StoredEnvelope;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::sink::{Sink, SinkError};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "ethgate-signature";

/// A webhook sink's settings. The secret is never printed: `Debug` hides it.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Sink name.
    pub name: String,
    /// Receiver URL (may carry credentials: only its host is ever logged).
    pub url: reqwest::Url,
    /// HMAC key.
    pub secret: String,
    /// Envelopes per POST.
    pub batch_size: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("secret", &"<redacted>")
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Delivers to one HTTP endpoint.
pub struct WebhookSink {
    cfg: WebhookConfig,
    client: reqwest::Client,
}

/// HMAC-SHA256 over `"<timestamp>.<body>"`. HMAC takes keys of any
/// length, so this is `None` only in theory; callers treat that as a
/// signature that matches nothing.
fn mac(secret: &str, timestamp: u64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The signature header value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={timestamp},v1={tag}")
}

/// Why a receiver refuses a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is missing parts or malformed.
    #[error("malformed ethgate-signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance: a replay.
    #[error("signature timestamp is outside the tolerance")]
    Stale,
    /// The MAC does not match the body and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a request on the receiver's side: the header must be well
/// formed, its timestamp within `tolerance` of `now` (unix seconds), and the
/// MAC equal (compared in constant time).
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    if now.abs_diff(t) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    match mac(secret, t, body) {
        Some(m) => m.verify_slice(&v1).map_err(|_| VerifyError::Mismatch),
        None => Err(VerifyError::Mismatch),
    }
}

impl WebhookSink {
    /// Builds the sink; fails only if the HTTP client cannot be built.
    pub fn new(cfg: WebhookConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(cfg.timeout).build()?;
        Ok(WebhookSink { cfg, client })
    }

    fn fail(&self, message: String) -> SinkError {
        SinkError {
            sink: self.cfg.name.clone(),
            message,
            retriable: true,
        }
    }

    async fn post(&self, batch: &[StoredEnvelope]) -> Result<(), SinkError> {
        let mut body = String::with_capacity(batch.len() * 1024 + 2);
        body.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            e.envelope.write_json(&mut body);
        }
        body.push(']');
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = sign(&self.cfg.secret, now, body.as_bytes());
        let host = self.cfg.url.host_str().unwrap_or("?").to_owned();
        let resp = self
            .client
            .post(self.cfg.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| self.fail(format!("POST to {host}: {}", e.without_url())))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(self.fail(format!("POST to {host}: HTTP {status}")))
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn max_batch(&self) -> usize {
        self.cfg.batch_size
    }

    fn send<'a>(&'a self, batch: &'a [StoredEnvelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.post(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_tampering_or_age_is_refused() {
        let body = br#"[{"id":"1"}]"#;
        let header = sign("s3cret", 1_000, body);
        assert!(header.starts_with("t=1000,v1="));
        let tol = Duration::from_secs(300);
        assert_eq!(verify("s3cret", &header, body, 1_100, tol), Ok(()));
        assert_eq!(
            verify("s3cret", &header, b"[]", 1_100, tol),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("other", &header, body, 1_100, tol),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &header, body, 1_301, tol),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("s3cret", "v1=00", body, 1_000, tol),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn debug_never_shows_the_secret_or_the_url_path() {
        let cfg = WebhookConfig {
            name: "h".into(),
            url: "https://hooks.example/path/TOKEN".parse().expect("url"),
            secret: "do-not-print".into(),
            batch_size: 1,
            timeout: Duration::from_secs(1),
        };
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("do-not-print") && !text.contains("TOKEN"),
            "{text}"
        );
    }
}
