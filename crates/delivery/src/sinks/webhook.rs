//! Webhooks: a POST of a JSON array of envelopes per batch, signed.
//!
//! The `ethgate-signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256
//! of "<t>.<body>" with the sink's secret>`. A receiver recomputes it with
//! [`verify`] and refuses old timestamps, so a captured request cannot be
//! replayed later. Any 2xx is the ack; anything else is a failed batch that
//! the dispatcher retries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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

/// Verifies a received request as [`verify`] does, reading the signature
/// from its headers and taking the clock's time: what a Rust receiver
/// (or a test's) calls on each POST.
pub fn verify_request(
    secret: &str,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(VerifyError::Malformed)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    verify(secret, header, body, now, tolerance)
}

/// Whether an address is outside the public internet: loopback, private,
/// link-local, shared, unspecified, multicast or unique-local — also when
/// an IPv6 address carries such an IPv4 one (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) or is
/// in the local NAT64 prefix `64:ff9b:1::/48`, which reaches the
/// operator's own network.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
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
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0], seg[1], seg[2]) == (0x64, 0xff9b, 1)
                || embedded_v4(v6).is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// The IPv4 address an IPv6 one stands for, in the forms a connection to
/// it reaches that IPv4 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match seg {
        // IPv4-mapped ::ffff:a.b.c.d
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // IPv4-compatible ::a.b.c.d (the loopback and unspecified aside)
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // NAT64 well-known prefix 64:ff9b::/96
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // 6to4 2002:AABB:CCDD::/48
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Why a URL's host is private without any lookup: an address literal
/// outside the public internet, or a `localhost` name (which resolves to
/// loopback by definition). `None` when only a lookup could tell.
pub fn private_host(url: &reqwest::Url) -> Option<String> {
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return Some(format!("{host} is the local host"));
    }
    let ip = host.parse::<IpAddr>().ok()?;
    is_private(ip).then(|| format!("{ip} is a private address"))
}

/// A destination refused because it is not on the public internet.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves to the private address {ip}; set allow_private_network = true for this sink to allow it"
)]
pub struct PrivateDestination {
    /// The host as the URL names it.
    pub host: String,
    /// The address it resolved to.
    pub ip: IpAddr,
}

/// How a webhook's host names become addresses: the system's resolver by
/// default. The addresses it returns are the only ones connected to.
pub type Lookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// The system's resolver.
fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

/// Resolves a host and refuses it if any address is private, in one step
/// that is also the connection's only resolution: what is connected to is
/// what was checked (a second lookup, which DNS could answer differently,
/// would open a rebinding window).
struct PublicOnly(Lookup);

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let lookup = self.0.clone();
        Box::pin(async move {
            let ips = lookup(host.clone()).await?;
            if let Some(ip) = ips.iter().copied().find(|ip| is_private(*ip)) {
                return Err(Box::new(PrivateDestination { host, ip }) as _);
            }
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The [`PrivateDestination`] a client error carries, if any.
fn refusal(e: &reqwest::Error) -> Option<&PrivateDestination> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(p) = s.downcast_ref::<PrivateDestination>() {
            return Some(p);
        }
        source = s.source();
    }
    None
}

impl WebhookSink {
    /// Builds the sink; fails only if the HTTP client cannot be built.
    pub fn new(cfg: WebhookConfig) -> Result<Self, reqwest::Error> {
        Self::with_lookup(cfg, system_lookup())
    }

    /// Builds the sink resolving host names with `lookup` (a resolver of
    /// the operator's choosing, or a test's DNS) instead of the system's.
    /// Redirects are never followed: a 3xx would send the signed body to
    /// wherever it points, past the private-address check.
    pub fn with_lookup(cfg: WebhookConfig, lookup: Lookup) -> Result<Self, reqwest::Error> {
        let mut client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !cfg.allow_private_network {
            client = client.dns_resolver(PublicOnly(lookup));
        }
        Ok(WebhookSink {
            cfg,
            client: client.build()?,
        })
    }

    fn fail(&self, message: String) -> SinkError {
        SinkError::retriable(&self.cfg.name, message)
    }

    fn refuse(&self, p: &PrivateDestination) -> SinkError {
        SinkError {
            sink: self.cfg.name.clone(),
            message: format!("refused: {p}"),
            retriable: false,
        }
    }

    /// Refuses a URL whose host is private without a lookup (a name is
    /// checked as it is resolved for the connection, see [`PublicOnly`]).
    fn check_literal(&self) -> Result<(), SinkError> {
        if self.cfg.allow_private_network {
            return Ok(());
        }
        match private_host(&self.cfg.url) {
            Some(why) => Err(SinkError {
                sink: self.cfg.name.clone(),
                message: format!(
                    "refused: {why}; set allow_private_network = true for this sink to allow it"
                ),
                retriable: false,
            }),
            None => Ok(()),
        }
    }

    async fn post(&self, batch: &[StoredEnvelope]) -> Result<(), SinkError> {
        self.check_literal()?;
        let body = StoredEnvelope::json_array(batch);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = sign(&self.cfg.secret, now, body.as_bytes());
        let host = self.cfg.url.host_str().unwrap_or("?").to_owned();
        let sent = self
            .client
            .post(self.cfg.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => match refusal(&e) {
                Some(p) => return Err(self.refuse(p)),
                None => return Err(self.fail(format!("POST to {host}: {}", e.without_url()))),
            },
        };
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(self.fail(format!(
                "POST to {host}: HTTP {status}; redirects are not followed (point the sink at the final URL)"
            )))
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
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "2002:c0a8:0101::1",
        ] {
            assert!(is_private(private.parse().expect("ip")), "{private}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
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
