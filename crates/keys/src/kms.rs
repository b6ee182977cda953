//! AWS KMS as a signer: the key (spec `ECC_SECG_P256K1`) never leaves the
//! KMS; ethgate sends a transaction's 32-byte signing hash to `Sign` and
//! turns the DER signature that comes back into an Ethereum one (low-s,
//! recovery id found by recovering the account's address). Requests are
//! signed with AWS Signature Version 4, so any KMS-compatible endpoint
//! works: AWS itself, a VPC endpoint, or a local emulator in tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_consensus::{SignableTransaction, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Signature, hex, keccak256};
use base64::Engine;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{KeyError, SignedTx, Signer, UnsignedTx};

/// Where the key is and the credentials to use it.
#[derive(Clone)]
pub struct KmsConfig {
    /// The KMS endpoint, e.g. `https://kms.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    /// The region the request is signed for.
    pub region: String,
    /// Key id, ARN or alias.
    pub key_id: String,
    /// AWS access key id.
    pub access_key_id: String,
    /// AWS secret access key (never logged or shown).
    pub secret_access_key: String,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An account whose key is a KMS secp256k1 key.
pub struct KmsSigner {
    config: KmsConfig,
    host: String,
    address: Address,
    http: reqwest::Client,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_id", &self.config.key_id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl KmsSigner {
    /// Reads the key's public key (`GetPublicKey`) and derives its address.
    pub async fn connect(config: KmsConfig, timeout: Duration) -> Result<Self, KeyError> {
        let mut signer = Self::client(config, timeout)?;
        let answer = signer
            .call("GetPublicKey", json!({"KeyId": signer.config.key_id}))
            .await?;
        let der = field_bytes(&answer, "PublicKey")?;
        signer.address = address_of_spki(&der)?;
        Ok(signer)
    }

    /// A signer for a key whose address is already known (from the
    /// config), without a call: every signature is still checked against
    /// `address`, so a wrong one fails the first signature, by name.
    pub fn with_address(
        config: KmsConfig,
        address: Address,
        timeout: Duration,
    ) -> Result<Self, KeyError> {
        let mut signer = Self::client(config, timeout)?;
        signer.address = address;
        Ok(signer)
    }

    /// A client for `config`'s endpoint, before its key is known.
    fn client(config: KmsConfig, timeout: Duration) -> Result<Self, KeyError> {
        let url = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| KeyError::Remote(format!("kms endpoint is not a URL: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(KeyError::Remote("kms endpoint has no host".into())),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| KeyError::Remote(format!("cannot build an HTTP client: {e}")))?;
        Ok(KmsSigner {
            config,
            host,
            address: Address::ZERO,
            http,
        })
    }

    async fn call(&self, action: &str, body: Value) -> Result<Value, KeyError> {
        let body = body.to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = amz_date(now);
        let target = format!("TrentService.{action}");
        let mut headers = vec![
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("host", self.host.clone()),
            ("x-amz-date", date.clone()),
            ("x-amz-target", target),
        ];
        if let Some(t) = &self.config.session_token {
            headers.push(("x-amz-security-token", t.clone()));
        }
        let auth = sigv4(&Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
            service: "kms",
            region: &self.config.region,
            access_key_id: &self.config.access_key_id,
            secret: &self.config.secret_access_key,
            amz_date: &date,
        });
        let mut req = self.http.post(&self.config.endpoint).body(body);
        for (k, v) in &headers {
            if *k != "host" {
                req = req.header(*k, v);
            }
        }
        let resp = req
            .header("authorization", auth)
            .send()
            .await
            .map_err(|e| KeyError::Remote(format!("kms {action}: {}", e.without_url())))?;
        let status = resp.status();
        let answer: Value = resp.json().await.map_err(|e| {
            KeyError::Remote(format!(
                "kms {action}: unreadable answer: {}",
                e.without_url()
            ))
        })?;
        if !status.is_success() {
            let kind = answer
                .get("__type")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = answer
                .get("message")
                .or_else(|| answer.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(KeyError::Remote(format!(
                "kms {action} refused ({status}): {kind} {message}"
            )));
        }
        Ok(answer)
    }

    /// Signs a 32-byte hash and returns the Ethereum signature.
    async fn sign_hash(&self, hash: B256) -> Result<Signature, KeyError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let answer = self
            .call(
                "Sign",
                json!({
                    "KeyId": self.config.key_id,
                    "Message": b64.encode(hash),
                    "MessageType": "DIGEST",
                    "SigningAlgorithm": "ECDSA_SHA_256",
                }),
            )
            .await?;
        let der = field_bytes(&answer, "Signature")?;
        let sig = k256::ecdsa::Signature::from_der(&der).map_err(|_| {
            KeyError::Remote("kms Sign answered a signature that is not DER".into())
        })?;
        // Ethereum accepts only the low-s form.
        let sig = sig.normalize_s().unwrap_or(sig);
        for parity in [false, true] {
            let candidate = Signature::from_signature_and_parity(sig, parity);
            if candidate.recover_address_from_prehash(&hash).ok() == Some(self.address) {
                return Ok(candidate);
            }
        }
        Err(KeyError::Remote(format!(
            "kms Sign answered a signature that is not {:#x}'s",
            self.address
        )))
    }

    async fn sign_tx(&self, tx: UnsignedTx) -> Result<SignedTx, KeyError> {
        let envelope: TxEnvelope = match tx {
            UnsignedTx::Eip1559(t) => {
                let sig = self.sign_hash(t.signature_hash()).await?;
                t.into_signed(sig).into()
            }
            UnsignedTx::Legacy(t) => {
                let sig = self.sign_hash(t.signature_hash()).await?;
                t.into_signed(sig).into()
            }
        };
        Ok(SignedTx {
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718(),
        })
    }
}

impl Signer for KmsSigner {
    fn address(&self) -> Address {
        self.address
    }

    fn sign(&self, tx: UnsignedTx) -> BoxFuture<'_, Result<SignedTx, KeyError>> {
        Box::pin(self.sign_tx(tx))
    }
}

/// Creates a secp256k1 signing key in the KMS (`key_id` of `config` is
/// ignored) and returns its id: what `ethgate keys new --kms` would do.
pub async fn create_key(config: &KmsConfig, timeout: Duration) -> Result<String, KeyError> {
    create_key_of_spec(config, "ECC_SECG_P256K1", timeout).await
}

/// Creates a signing key of `spec`; only `ECC_SECG_P256K1` keys can sign
/// Ethereum transactions, others exist to test the refusal.
pub async fn create_key_of_spec(
    config: &KmsConfig,
    spec: &str,
    timeout: Duration,
) -> Result<String, KeyError> {
    let client = KmsSigner::client(config.clone(), timeout)?;
    let answer = client
        .call(
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY", "Description": "ethgate operational account"}),
        )
        .await?;
    answer
        .pointer("/KeyMetadata/KeyId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| KeyError::Remote("kms CreateKey answered no key id".into()))
}

fn field_bytes(answer: &Value, field: &str) -> Result<Vec<u8>, KeyError> {
    let text = answer
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| KeyError::Remote(format!("kms answered no {field}")))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| KeyError::Remote(format!("kms answered a {field} that is not base64")))
}

/// The address of a DER SubjectPublicKeyInfo holding an uncompressed
/// secp256k1 point (what `GetPublicKey` returns for `ECC_SECG_P256K1`).
fn address_of_spki(der: &[u8]) -> Result<Address, KeyError> {
    // secp256k1's OID, 1.3.132.0.10, DER-encoded.
    const SECP256K1: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    if !der.windows(SECP256K1.len()).any(|w| w == SECP256K1) {
        return Err(KeyError::Remote(
            "the kms key is not secp256k1 (key spec must be ECC_SECG_P256K1)".into(),
        ));
    }
    let point = der
        .len()
        .checked_sub(65)
        .map(|i| &der[i..])
        .filter(|p| p[0] == 0x04)
        .ok_or_else(|| KeyError::Remote("kms public key is not an uncompressed point".into()))?;
    k256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| KeyError::Remote("kms public key is not on the curve".into()))?;
    Ok(Address::from_slice(&keccak256(&point[1..])[12..]))
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// One request to sign with AWS Signature Version 4.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    /// Already canonical (sorted, encoded).
    query: &'a str,
    /// Lower-case names, sorted.
    headers: &'a [(&'a str, String)],
    body: &'a [u8],
    service: &'a str,
    region: &'a str,
    access_key_id: &'a str,
    secret: &'a str,
    amz_date: &'a str,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header value for `r`.
fn sigv4(r: &Request<'_>) -> String {
    let day = &r.amz_date[..8];
    let signed: Vec<&str> = r.headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical_headers: String = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method,
        r.path,
        r.query,
        canonical_headers,
        signed,
        hex::encode(Sha256::digest(r.body))
    );
    let scope = format!("{day}/{}/{}/aws4_request", r.region, r.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        r.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", r.secret).as_bytes(), day.as_bytes());
    for part in [r.region, r.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        r.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published Signature Version 4 example (IAM ListUsers,
    /// 2015-08-30): the same inputs must give the documented signature.
    #[test]
    fn sigv4_matches_the_documented_example() {
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("host", "iam.amazonaws.com".to_owned()),
            ("x-amz-date", "20150830T123600Z".to_owned()),
        ];
        let auth = sigv4(&Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
            service: "iam",
            region: "us-east-1",
            access_key_id: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            amz_date: "20150830T123600Z",
        });
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn amz_date_formats_utc() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(1_709_210_096), "20240229T123456Z");
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = KmsConfig {
            endpoint: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            key_id: "k".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret-value".into(),
            session_token: Some("session-secret".into()),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret-value") && !shown.contains("session-secret"),
            "{shown}"
        );
    }
}
