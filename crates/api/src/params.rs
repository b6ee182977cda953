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

/// A JSON body integer from 0 to `i64::MAX`: JSON Schema counts `113.0`
/// as the integer 113, so it is taken as one.
pub fn body_uint(v: &serde_json::Value) -> Option<u64> {
    let n = match v.as_u64() {
        Some(n) => n,
        None => {
            let f = v.as_f64()?;
            if f.fract() != 0.0 || !(0.0..=9.2e18).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    i64::try_from(n).is_ok().then_some(n)
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_whole_float_body_integer_reads_exactly() {
        // Without serde_json's correctly rounded float parsing this read
        // as 4330863159275441.5 and was refused (found by the API fuzzer).
        let v: serde_json::Value = serde_json::from_str("4330863159275442.0").expect("json");
        assert_eq!(super::body_uint(&v), Some(4_330_863_159_275_442));
        let v: serde_json::Value = serde_json::from_str("113.5").expect("json");
        assert_eq!(super::body_uint(&v), None);
    }
}
