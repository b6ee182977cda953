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
    /// How long a batch may keep failing before it becomes a dead letter.
    pub max_age: Duration,
    /// Whether the URL may resolve to private, loopback or link-local
    /// addresses (off by default: a webhook URL must not reach the
    /// operator's internal network).
    pub allow_private_network: bool,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("secret", &"<redacted>")
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .field("max_age", &self.max_age)
            .field("allow_private_network", &self.allow_private_network)
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

/// Whether an address is outside the public internet: loopback, private,
/// link-local, shared, unspecified, multicast or unique-local.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        std::net::IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(std::net::IpAddr::V4(v4)))
        }
    }
}

impl WebhookSink {
    /// Builds the sink; fails only if the HTTP client cannot be built.
    pub fn new(cfg: WebhookConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(cfg.timeout).build()?;
        Ok(WebhookSink { cfg, client })
    }

    fn fail(&self, message: String) -> SinkError {
        SinkError::retriable(&self.cfg.name, message)
    }

    /// Refuses a destination that resolves to a private address unless
    /// allowed. Checked before every POST, since DNS answers change.
    async fn check_destination(&self) -> Result<(), SinkError> {
        if self.cfg.allow_private_network {
            return Ok(());
        }
        let host = self
            .cfg
            .url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = self.cfg.url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| self.fail(format!("resolving {host}: {e}")))?;
        for a in addrs {
            if is_private(a.ip()) {
                return Err(SinkError {
                    sink: self.cfg.name.clone(),
                    message: format!(
                        "refused: {host} resolves to the private address {}; set allow_private_network = true for this sink to allow it",
                        a.ip()
                    ),
                    retriable: false,
                });
            }
        }
        Ok(())
    }

    async fn post(&self, batch: &[StoredEnvelope]) -> Result<(), SinkError> {
        self.check_destination().await?;
        let body = StoredEnvelope::json_array(batch);
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

    fn dead_letter_after(&self) -> Option<Duration> {
        Some(self.cfg.max_age)
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
    fn private_and_special_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().expect("ip")), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret_or_the_url_path() {
        let cfg = WebhookConfig {
            name: "h".into(),
            url: "https://hooks.example/path/TOKEN".parse().expect("url"),
            secret: "do-not-print".into(),
            batch_size: 1,
            timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(60),
            allow_private_network: false,
        };
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("do-not-print") && !text.contains("TOKEN"),
            "{text}"
        );
    }
}
