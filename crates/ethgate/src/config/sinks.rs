//! Validation of `[[sinks]]`: webhook, amqp and nats. Secrets (signing
//! keys, URLs with credentials) come from environment variables or files,
//! and no message ever echoes one.

use std::path::Path;
use std::time::Duration;

use ethgate_delivery::sinks::SinkConfig;
use ethgate_delivery::sinks::amqp::AmqpConfig;
use ethgate_delivery::sinks::nats::NatsConfig;
use ethgate_delivery::sinks::webhook::WebhookConfig;

use super::raw::RawSink;
use super::validate::{Issues, duration, valid_name};

/// A secret from an environment variable or a file, exactly one of them.
/// Messages name where it was sought, never what was found.
pub(super) fn secret(
    issues: &mut Issues,
    key: impl Fn(&str) -> String,
    env: Option<&str>,
    file: Option<&str>,
    what: &str,
    base: &Path,
) -> Option<String> {
    match (env, file) {
        (Some(var), None) => std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                issues.add(
                    key("_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }),
        (None, Some(file)) => {
            let path = base.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
                Ok(_) => {
                    issues.add(key("_file"), format!("{} is empty", path.display()));
                    None
                }
                Err(e) => {
                    issues.add(key("_file"), format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        _ => {
            issues.add(
                key("_env"),
                format!("give exactly one of {what}_env or {what}_file"),
            );
            None
        }
    }
}

/// A broker URL from `url` or `url_env` (exactly one), with one of
/// `schemes` (`described` in the error). Checked without echoing it: it may
/// carry a password.
fn broker_url(
    issues: &mut Issues,
    k: &dyn Fn(&str) -> String,
    (url, url_env): (Option<String>, Option<&str>),
    schemes: &[&str],
    described: &str,
    base: &Path,
) -> Option<String> {
    let url = match (url, url_env) {
        (Some(u), None) => Some(u),
        (None, Some(_)) => secret(
            issues,
            |f| k(&format!("url{f}")),
            url_env,
            None,
            "url",
            base,
        ),
        _ => {
            issues.add(k("url"), "give exactly one of url or url_env");
            None
        }
    };
    url.filter(|u| {
        let ok = schemes.iter().any(|s| u.starts_with(s));
        if !ok {
            issues.add(k("url"), format!("is not {described}"));
        }
        ok
    })
}

pub(super) fn sink(issues: &mut Issues, i: usize, s: RawSink, base: &Path) -> Option<SinkConfig> {
    let k = |f: &str| format!("sinks[{i}].{f}");
    if !valid_name(&s.name) {
        issues.add(
            k("name"),
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", s.name),
        );
    }
    let batch_default = if s.kind == "webhook" { 1 } else { 100 };
    let batch_size = s.batch_size.unwrap_or(batch_default);
    if !(1..=1000).contains(&batch_size) {
        issues.add(k("batch_size"), "must be between 1 and 1000");
    }
    match s.kind.as_str() {
        "webhook" => webhook(issues, i, s, base, batch_size),
        "amqp" => amqp(issues, i, s, base, batch_size),
        "nats" => nats(issues, i, s, base, batch_size),
        other => {
            issues.add(
                k("kind"),
                format!("{other:?} is not a sink kind this build has; use \"webhook\", \"amqp\" or \"nats\""),
            );
            None
        }
    }
}

fn webhook(
    issues: &mut Issues,
    i: usize,
    s: RawSink,
    base: &Path,
    batch_size: usize,
) -> Option<SinkConfig> {
    let k = |f: &str| format!("sinks[{i}].{f}");
    let url = match s.url.as_deref().map(reqwest::Url::parse) {
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Some(_) => {
            issues.add(k("url"), "is not an http(s) URL");
            None
        }
        None => {
            issues.add(k("url"), "a webhook needs a url");
            None
        }
    };
    if let Some(why) = url
        .as_ref()
        .filter(|_| !s.allow_private_network)
        .and_then(ethgate_delivery::sinks::webhook::private_host)
    {
        issues.add(
            k("url"),
            format!("{why}; set allow_private_network = true for this sink to allow it"),
        );
    }
    let secret = secret(
        issues,
        |f| k(&format!("secret{f}")),
        s.secret_env.as_deref(),
        s.secret_file.as_deref(),
        "secret",
        base,
    );
    let timeout = duration(
        issues,
        k("timeout"),
        s.timeout.as_deref(),
        Duration::from_secs(10),
    );
    let max_age = duration(
        issues,
        k("max_age"),
        s.max_age.as_deref(),
        Duration::from_secs(3600),
    );
    Some(SinkConfig::Webhook(WebhookConfig {
        name: s.name,
        url: url?,
        secret: secret?,
        batch_size,
        timeout,
        max_age,
        allow_private_network: s.allow_private_network,
    }))
}

fn amqp(
    issues: &mut Issues,
    i: usize,
    s: RawSink,
    base: &Path,
    batch_size: usize,
) -> Option<SinkConfig> {
    let k = |f: &str| format!("sinks[{i}].{f}");
    let url = broker_url(
        issues,
        &k,
        (s.url, s.url_env.as_deref()),
        &["amqp://", "amqps://"],
        "an amqp:// or amqps:// URL",
        base,
    );
    let exchange = s.exchange.unwrap_or_else(|| "ethgate".to_owned());
    if exchange.is_empty() || exchange.len() > 255 {
        issues.add(k("exchange"), "must be 1-255 characters");
    }
    Some(SinkConfig::Amqp(AmqpConfig {
        name: s.name,
        url: url?,
        exchange,
        batch_size,
    }))
}

fn nats(
    issues: &mut Issues,
    i: usize,
    s: RawSink,
    base: &Path,
    batch_size: usize,
) -> Option<SinkConfig> {
    let k = |f: &str| format!("sinks[{i}].{f}");
    let url = broker_url(
        issues,
        &k,
        (s.url, s.url_env.as_deref()),
        &["nats://", "tls://"],
        "a nats:// or tls:// URL",
        base,
    );
    let token = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let stream = s.jetstream_stream.unwrap_or_else(|| "ETHGATE".to_owned());
    if !token(&stream) {
        issues.add(k("jetstream_stream"), "must be letters, digits, '-' or '_'");
    }
    let subject_prefix = s.subject_prefix.unwrap_or_else(|| "ethgate".to_owned());
    if !token(&subject_prefix) {
        issues.add(
            k("subject_prefix"),
            "must be one subject token: letters, digits, '-' or '_'",
        );
    }
    Some(SinkConfig::Nats(NatsConfig {
        name: s.name,
        url: url?,
        stream,
        subject_prefix,
        batch_size,
    }))
}
