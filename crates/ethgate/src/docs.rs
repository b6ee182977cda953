//! The README and the pages in `docs/` hold commands and configs a reader
//! will paste; these tests keep them true. Every fenced block names its
//! language; every `ethgate` command parses with this binary's own
//! command line, every script it names exists, and every JSON block is
//! JSON; the configuration reference lists exactly the keys the config's
//! types accept. (Each page's TOML blocks are run through `ethgate config
//! check` by `tests/it/docs.rs`, which can give the binary its environment.)

use clap::Parser;

use crate::doc_pages::{Block, blocks, pages, root};

fn all_blocks() -> Vec<Block> {
    pages().iter().flat_map(|p| blocks(p)).collect()
}

/// Splits shell text into commands of words: quotes, `\` line
/// continuations, comments, and `;`, `&`, `&&`, `|` and new lines
/// between commands, as a shell reads them (no expansion).
fn commands(text: &str) -> Vec<Vec<String>> {
    let (mut cmds, mut words, mut word) = (Vec::new(), Vec::new(), None::<String>);
    let mut chars = text.chars().peekable();
    let end_word = |words: &mut Vec<String>, word: &mut Option<String>| words.extend(word.take());
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        _ => w.push(q),
                    }
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            ' ' | '\t' => end_word(&mut words, &mut word),
            '\n' | ';' | '&' | '|' => {
                end_word(&mut words, &mut word);
                if !words.is_empty() {
                    cmds.push(std::mem::take(&mut words));
                }
            }
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut words, &mut word);
    if !words.is_empty() {
        cmds.push(words);
    }
    cmds
}

/// Programs other than ethgate and its scripts a page may show; they are
/// not run here (the quick start, the `curl` lines and the chaos block
/// run in `tests/it/docs_run.rs`).
const OTHER_PROGRAMS: &[&str] = &["anvil", "cargo", "cast", "cd", "curl", "export", "pg_dump"];

#[test]
fn every_block_names_its_language() {
    for b in all_blocks() {
        assert!(
            ["sh", "toml", "json", "text"].contains(&b.lang.as_str()),
            "{}: a block tagged {:?}; tag it sh, toml, json or text (output)",
            b.at,
            b.lang
        );
    }
}

#[test]
fn every_command_in_the_docs_parses() {
    let mut seen = 0;
    for b in all_blocks().into_iter().filter(|b| b.lang == "sh") {
        for words in commands(&b.text) {
            let start = words
                .iter()
                .position(|w| !w.contains('=') || w.starts_with('-'))
                .unwrap_or(words.len());
            let Some(program) = words.get(start) else {
                continue;
            };
            if program == "ethgate" {
                if let Err(e) = crate::Cli::try_parse_from(&words[start..]) {
                    panic!("{}: `{}` does not parse:\n{e}", b.at, words.join(" "));
                }
                seen += 1;
            } else if let Some(script) = program.strip_prefix("scripts/") {
                let path = root().join("scripts").join(script);
                assert!(path.is_file(), "{}: no script {program}", b.at);
                if let Some(sub) = words.get(start + 1).filter(|w| !w.starts_with('-')) {
                    let body = std::fs::read_to_string(&path).expect("script");
                    assert!(
                        body.contains(sub.as_str()),
                        "{}: {program} knows no `{sub}`",
                        b.at
                    );
                }
            } else {
                assert!(
                    OTHER_PROGRAMS.contains(&program.as_str()),
                    "{}: `{program}` is neither ethgate, a script nor a known tool",
                    b.at
                );
            }
        }
    }
    assert!(seen >= 20, "only {seen} ethgate commands found in the docs");
}

#[test]
fn every_json_block_is_json() {
    for b in all_blocks().into_iter().filter(|b| b.lang == "json") {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&b.text) {
            panic!("{}: not JSON: {e}", b.at);
        }
    }
}

#[test]
fn the_shell_splitter_reads_quotes_continuations_and_comments() {
    let cmds = commands(
        "A=1 ethgate tx send --json '{\"a\": 1,\n \"b\"}' # note\nanvil \\\n  --port 1 &\n\
         curl -s \"x y\" && ethgate streams\n",
    );
    let want: Vec<Vec<&str>> = vec![
        vec![
            "A=1",
            "ethgate",
            "tx",
            "send",
            "--json",
            "{\"a\": 1,\n \"b\"}",
        ],
        vec!["anvil", "--port", "1"],
        vec!["curl", "-s", "x y"],
        vec!["ethgate", "streams"],
    ];
    assert_eq!(cmds, want);
}

/// The keys a table of the config accepts, as its type reports them: an
/// unknown key is refused with the list of the expected ones.
fn accepted_keys(table: &str) -> Vec<String> {
    let probe = "zz_probe = 1\n";
    let doc = match table {
        "" => probe.to_owned(),
        t if t.starts_with("[[") => format!("{t}\n{probe}"),
        "[streams.factory]" => format!("[[streams]]\n[streams.factory]\n{probe}"),
        t => format!("{t}\n{probe}"),
    };
    let err = toml::from_str::<crate::config::raw::RawConfig>(&doc).expect_err("probe refused");
    let message = err.message().to_owned();
    let list = message
        .split_once("expected one of ")
        .map(|(_, l)| l)
        .or_else(|| message.split_once("expected ").map(|(_, l)| l))
        .unwrap_or_else(|| panic!("{table}: {message}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_reference_lists_exactly_the_accepted_keys() {
    let page = std::fs::read_to_string(root().join("docs/configuration.md")).expect("page");
    let reference = &page[page.find("## Reference").expect("a Reference section")..];
    let tables: Vec<String> = accepted_keys("")
        .into_iter()
        .map(|k| match k.as_str() {
            "store" | "api" | "tx" | "cluster" => format!("[{k}]"),
            _ => format!("[[{k}]]"),
        })
        .chain(["[streams.factory]".to_owned()])
        .collect();
    for table in &tables {
        let heading = format!("### `{table}`");
        let at = reference
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/configuration.md: no section {heading}"));
        let section = &reference[at + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let mut documented: Vec<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
            .collect();
        let mut accepted = accepted_keys(table);
        documented.sort();
        accepted.sort();
        assert_eq!(documented, accepted, "docs/configuration.md, {table}");
    }
}

#[test]
fn every_path_the_docs_name_exists() {
    let mut named = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for quoted in text.split('`').skip(1).step_by(2) {
            let is_path = ["crates/", "scripts/", "contracts/", "examples/", "docs/"]
                .iter()
                .any(|p| quoted.starts_with(p));
            if !is_path || quoted.contains(char::is_whitespace) || quoted.contains('*') {
                continue;
            }
            named += 1;
            assert!(
                root().join(quoted.trim_end_matches('/')).exists(),
                "{}: names `{quoted}`, which does not exist",
                page.display()
            );
        }
    }
    assert!(named >= 40, "only {named} paths named in the docs");
}
