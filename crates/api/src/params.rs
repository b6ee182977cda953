//! Query-string parsing with errors that name the parameter.

use std::collections::HashMap;

use crate::ApiError;

/// Parses `raw` allowing only `allowed` names, each at most once.
pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_param("query", format!("malformed query string: {e}")))?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_param(
                &k,
                format!("unknown parameter; expected one of {allowed:?}"),
            ));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(ApiError::bad_param(&k, "given more than once"));
        }
    }
    Ok(out)
}

/// An optional integer parameter within `[min, max]`.
pub fn int(
    params: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_param(
                name,
                format!("{v:?} must be an integer from {min} to {max}"),
            )),
        },
    }
}
