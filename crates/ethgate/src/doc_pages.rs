//! The README and the pages in `docs/`, and the fenced blocks in them:
//! read the same way by the docs' unit tests (`src/docs.rs`) and their
//! integration test (`tests/it/docs.rs`), which includes this file.

use std::path::{Path, PathBuf};

/// The repository's root, two levels above this crate.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One fenced block: where it starts, its language tag and its text.
pub struct Block {
    /// `page:line` of its opening fence.
    pub at: String,
    /// Its language tag (`sh`, `toml`, …).
    pub lang: String,
    /// Its lines.
    pub text: String,
}

/// The README and every page under `docs/`.
pub fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The fenced blocks of `page`, in order.
pub fn blocks(page: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(page).expect("page");
    let name = page
        .strip_prefix(root())
        .unwrap_or(page)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    at: format!("{name}:{}", i + 1),
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{name}: a code block is never closed");
    out
}
