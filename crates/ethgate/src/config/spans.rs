//! Maps config keys to file lines, so every error can say where it is.

use toml::de::{DeTable, DeValue};

/// `["chains", "0", "rpc"]` → `chains[0].rpc`.
pub fn key_of(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Every key of a document with its line, built in one walk, so that
/// finding the lines of many problems costs one pass over the file rather
/// than one per problem.
pub struct Lines(std::collections::HashMap<String, usize>);

impl Lines {
    /// Indexes `text`; an unparsable text has no lines.
    pub fn new(text: &str) -> Lines {
        let mut map = std::collections::HashMap::new();
        let Ok(doc) = DeTable::parse(text) else {
            return Lines(map);
        };
        let starts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let line = |offset: usize| starts.partition_point(|&nl| nl < offset) + 1;
        let mut stack: Vec<(String, &DeValue)> = Vec::new();
        for (k, v) in doc.get_ref().iter() {
            let key = k.get_ref().to_string();
            map.insert(key.clone(), line(v.span().start));
            stack.push((key, v.get_ref()));
        }
        while let Some((key, v)) = stack.pop() {
            match v {
                DeValue::Table(t) => {
                    for (k, child) in t.iter() {
                        let ck = format!("{key}.{}", k.get_ref());
                        map.insert(ck.clone(), line(child.span().start));
                        stack.push((ck, child.get_ref()));
                    }
                }
                DeValue::Array(a) => {
                    for (i, child) in a.iter().enumerate() {
                        let ck = format!("{key}[{i}]");
                        map.insert(ck.clone(), line(child.span().start));
                        stack.push((ck, child.get_ref()));
                    }
                }
                _ => {}
            }
        }
        Lines(map)
    }

    /// The line of `key` (e.g. `streams[1].addresses[0]`), or of its
    /// nearest parent present in the file.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut k = key;
        loop {
            if let Some(l) = self.0.get(k) {
                return Some(*l);
            }
            let cut = k.rfind(['.', '['])?;
            k = &k[..cut];
        }
    }
}

/// The line of one key; [`Lines`] for many.
#[cfg(test)]
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    Lines::new(text).line_of(key)
}

/// The key whose value spans `offset`, for serde errors that only carry a
/// position.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    // Spans of arrays of tables need not cover their members, so descend
    // into every container and keep the leaf (or key) that covers `offset`.
    fn find(v: &DeValue, offset: usize) -> Option<Vec<String>> {
        type Child<'a, 'i> = (
            String,
            &'a toml::Spanned<DeValue<'i>>,
            Option<std::ops::Range<usize>>,
        );
        let children: Vec<Child<'_, '_>> = match v {
            DeValue::Table(t) => t
                .iter()
                .map(|(k, val)| (k.get_ref().to_string(), val, Some(k.span())))
                .collect(),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, val)| (i.to_string(), val, None))
                .collect(),
            _ => return None,
        };
        for (name, val, key_span) in children {
            if let Some(mut rest) = find(val.get_ref(), offset) {
                rest.insert(0, name);
                return Some(rest);
            }
            if val.span().contains(&offset) || key_span.is_some_and(|s| s.contains(&offset)) {
                return Some(vec![name]);
            }
        }
        None
    }
    let doc = DeTable::parse(text).ok()?;
    let path = find(&DeValue::Table(doc.into_inner()), offset)?;
    Some(key_of(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[store]\nurl = \"x\"\n\n[[streams]]\nname = \"a\"\n\n[[streams]]\nname = \"b\"\naddresses = [\n  \"0x1\",\n  \"0x2\",\n]\n";

    #[test]
    fn finds_lines_of_nested_keys() {
        assert_eq!(line_of(DOC, "store.url"), Some(2));
        assert_eq!(line_of(DOC, "streams[1].name"), Some(8));
        assert_eq!(line_of(DOC, "streams[1].addresses[1]"), Some(11));
        assert_eq!(
            line_of(DOC, "streams[1].missing"),
            Some(7).or(line_of(DOC, "streams[1]"))
        );
    }

    #[test]
    fn finds_key_at_an_offset() {
        let at = DOC.find("\"0x2\"").expect("present") + 1;
        assert_eq!(key_at(DOC, at).as_deref(), Some("streams[1].addresses[1]"));
        assert_eq!(
            key_of(&["chains".into(), "0".into(), "rpc".into()]),
            "chains[0].rpc"
        );
    }
}
