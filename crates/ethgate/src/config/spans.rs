//! Maps config keys to file lines, so every error can say where it is.

use toml::de::{DeTable, DeValue};

enum Seg {
    Key(String),
    Index(usize),
}

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

fn parse_key(key: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in key.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            segs.push(Seg::Key(rest[..open].to_owned()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else {
            segs.push(Seg::Key(rest.to_owned()));
        }
    }
    segs
}

fn line(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of `key` (e.g. `streams[1].addresses[0]`), or of its nearest
/// parent present in the file.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut table: Option<&DeTable> = Some(doc.get_ref());
    let mut value: Option<&DeValue> = None;
    for seg in parse_key(key) {
        let next = match (seg, table, value) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(name, _)| name.get_ref().as_ref() == k)
                .map(|(_, v)| v),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(line(text, next.span().start));
        value = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
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
