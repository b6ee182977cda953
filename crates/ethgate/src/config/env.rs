//! `ETHGATE_…` environment overrides: `ETHGATE_STORE__URL` sets
//! `store.url`, `ETHGATE_CHAINS__0__RPC='["http://a", "http://b"]'` sets
//! `chains[0].rpc`. A double underscore separates keys, a number indexes an
//! array; the value is read as TOML if it parses, else as a string.

use toml::{Table, Value};

/// One override: the key path and the variable that set it.
#[derive(Debug, Clone)]
pub struct Override {
    /// Variable name, for error messages.
    pub var: String,
    /// Key path, e.g. `["chains", "0", "rpc"]`.
    pub path: Vec<String>,
    /// The value.
    pub value: Value,
}

/// The overrides present in `vars` (normally `std::env::vars()`).
pub fn overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("ETHGATE_")?;
            if !rest.contains("__") {
                return None;
            }
            let path = rest.split("__").map(str::to_ascii_lowercase).collect();
            let value = toml::from_str::<Table>(&format!("v = {v}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(Value::String(v));
            Some(Override {
                var: k,
                path,
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Applies an override to the document, creating tables as needed.
pub fn apply(doc: &mut Table, o: &Override) -> Result<(), String> {
    let mut cur: &mut Value = doc
        .entry(o.path[0].clone())
        .or_insert_with(|| Value::Table(Table::new()));
    for (i, seg) in o.path.iter().enumerate().skip(1) {
        cur = match cur {
            Value::Table(t) => t
                .entry(seg.clone())
                .or_insert_with(|| Value::Table(Table::new())),
            Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("{}: {seg:?} is not an array index", o.var))?;
                a.get_mut(idx).ok_or_else(|| {
                    format!("{}: {} has no element {idx}", o.var, o.path[..i].join("."))
                })?
            }
            _ => {
                return Err(format!(
                    "{}: {} is not a table",
                    o.var,
                    o.path[..i].join(".")
                ));
            }
        };
    }
    *cur = o.value.clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_underscore_paths_and_toml_values() {
        let vars = vec![
            ("ETHGATE_STORE__URL".to_owned(), "sqlite://x.db".to_owned()),
            (
                "ETHGATE_CHAINS__0__RPC".to_owned(),
                r#"["http://a"]"#.to_owned(),
            ),
            ("ETHGATE_CONFIG".to_owned(), "ignored.toml".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let o = overrides(vars.into_iter());
        assert_eq!(o.len(), 2);
        let mut doc: Table =
            toml::from_str("[[chains]]\nname = \"a\"\nrpc = []\nchain_id = 1\n").expect("toml");
        for x in &o {
            apply(&mut doc, x).expect("applies");
        }
        assert_eq!(doc["store"]["url"].as_str(), Some("sqlite://x.db"));
        assert_eq!(doc["chains"][0]["rpc"][0].as_str(), Some("http://a"));
    }

    #[test]
    fn index_past_the_array_is_an_error_naming_the_variable() {
        let o = overrides(std::iter::once((
            "ETHGATE_CHAINS__3__NAME".to_owned(),
            "x".to_owned(),
        )));
        let mut doc: Table = toml::from_str("chains = []").expect("toml");
        let err = apply(&mut doc, &o[0]).expect_err("no element 3");
        assert!(err.contains("ETHGATE_CHAINS__3__NAME"), "{err}");
    }
}
