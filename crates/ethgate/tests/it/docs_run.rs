//! The docs' commands that talk to a running gateway or node, run as a
//! reader runs them: each line through `sh`, in a fresh directory, with
//! the `ethgate` under test first on `PATH`. The README's quick start runs
//! whole — its config against a node at the chain id it names, where the
//! contract it names is deployed — and so do the `curl` lines of the API
//! and security pages against that gateway, and the chaos proxy's block of
//! the operations page. (Lines that only build or print stay parsed by
//! `src/docs.rs`.)

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use ethgate_testkit::anvil::{Anvil, tool};
use serde_json::Value;

use crate::common::{ShowLog, ready};

use crate::doc_pages;

/// A reader's shell: a directory, the variables they set, and what they
/// left running (killed when it is dropped).
struct Shell {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
    running: Vec<Child>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        for c in &mut self.running {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Shell {
    fn new() -> Shell {
        let bin = Path::new(env!("CARGO_BIN_EXE_ethgate"))
            .parent()
            .expect("bin dir")
            .to_owned();
        let tools = tool("anvil").parent().map(Path::to_owned);
        let mut path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .collect::<Vec<_>>();
        path.insert(0, bin);
        path.extend(tools);
        let path = std::env::join_paths(path).expect("PATH");
        Shell {
            dir: tempfile::tempdir().expect("tempdir"),
            vars: vec![("PATH".into(), path.to_string_lossy().into_owned())],
            running: Vec::new(),
        }
    }

    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(self.dir.path())
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn set(&mut self, name: &str, value: &str) {
        self.vars.push((name.into(), value.into()));
    }

    /// Runs a line to its end; it must succeed.
    fn run(&self, line: &str) -> Output {
        let out = self.command(line).output().expect("sh");
        assert!(
            out.status.success(),
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a line until it succeeds, for up to 30 s: what a reader
    /// started in the background may still be starting.
    fn run_when_up(&self, line: &str) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.command(line).output().expect("sh");
            if out.status.success() {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "`{line}` failed ({})",
                out.status
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Leaves a line running, as `&` or a second terminal does; its
    /// output goes to `ethgate.log` (shown if the test fails).
    fn start(&mut self, line: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ethgate.log"))
            .expect("log");
        let child = self
            .command(&format!("exec {line}"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("sh");
        self.running.push(child);
    }
}

/// Fails with a clear message when a port the docs use is taken (a demo
/// left running, say): the docs' commands use the default ports.
fn assert_free(ports: &[u16]) {
    for port in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port}, which the docs' commands use, is taken on 127.0.0.1; stop what holds it"
        );
    }
}

/// The commands of a `sh` block: comments dropped, continuations joined.
fn lines(block: &str) -> Vec<String> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(uncommented)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `line` without its shell comment (a `#` after a space, outside quotes).
fn uncommented(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The `sh` lines of `page` that contain `marker`.
fn page_lines(page: &str, marker: &str) -> Vec<String> {
    let blocks = doc_pages::blocks(&doc_pages::root().join(page));
    let found: Vec<String> = blocks
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| lines(&b.text))
        .filter(|l| l.contains(marker))
        .collect();
    assert!(!found.is_empty(), "{page}: no command with {marker:?}");
    found
}

fn json(line: &str, out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`{line}` printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The README's quick-start config, the chain id and the contract it
/// names, and a node for it: anvil at that chain id, where the contract
/// it names (the first a dev account deploys) has emitted the event it
/// names enough blocks ago to pass its confirmations. The one thing a
/// reader changes to their own, the node, points at that anvil, and the
/// start block at the beginning of its chain.
async fn quick_start_world(toml_text: &str) -> (toml::Table, Anvil, Address) {
    let mut config: toml::Table = toml::from_str(toml_text).expect("README TOML");
    let chain = &mut config["chains"].as_array_mut().expect("[[chains]]")[0];
    let chain_id = chain["chain_id"].as_integer().expect("chain_id");
    let anvil = Anvil::start(&["--chain-id", &chain_id.to_string()]).await;
    chain["rpc"] = toml::Value::Array(vec![anvil.url.as_str().into()]);
    let stream = &mut config["streams"].as_array_mut().expect("[[streams]]")[0];
    stream["from_block"] = 0.into();
    let address: Address = stream["addresses"][0]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("the stream's address");
    assert_eq!(anvil.deploy_event_source().await, address);
    anvil.burst(address, 3, 1).await;
    anvil.mine(3).await;
    (config, anvil, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_and_the_api_pages_curl_lines_run_as_written() {
    assert_free(&[8700]);
    let readme = doc_pages::blocks(&doc_pages::root().join("README.md"));
    let at = readme
        .iter()
        .position(|b| b.lang == "toml")
        .expect("the quick start's config");
    let (config, _anvil, address) = quick_start_world(&readme[at].text).await;

    let mut sh = Shell::new();
    let _log = ShowLog(sh.dir.path().to_owned());
    std::fs::write(
        sh.dir.path().join("ethgate.toml"),
        toml::to_string(&config).expect("toml"),
    )
    .expect("write config");
    let steps: Vec<String> = readme[at + 1..]
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| lines(&b.text))
        .collect();
    let http = reqwest::Client::new();
    let mut ran = Vec::new();
    for line in &steps {
        if line.starts_with("ethgate serve") {
            sh.start(line);
            ready(&http, "http://127.0.0.1:8700").await;
        } else if line.starts_with("ethgate token create") {
            let token = String::from_utf8_lossy(&sh.run(line).stdout)
                .trim()
                .to_owned();
            sh.set("TOKEN", &token);
        } else if line.starts_with("curl") {
            let page = json(line, &sh.run(line));
            let events = page["events"]
                .as_array()
                .unwrap_or_else(|| panic!("`{line}`: {page}"));
            assert_eq!(events.len(), 3, "{page}");
            for e in events {
                assert_eq!(e["event"], "Transfer", "{e}");
                assert_eq!(e["address"], address.to_string().to_lowercase(), "{e}");
            }
        } else if line.starts_with("ethgate streams") {
            let out = sh.run(line);
            assert!(String::from_utf8_lossy(&out.stdout).contains("orders"));
        } else {
            sh.run(line);
        }
        ran.push(line.clone());
    }
    assert!(ran.len() >= 5, "the quick start ran only {ran:?}");

    // The API page's lines, against the same gateway and stream.
    for line in page_lines("docs/api.md", "curl") {
        let page = json(&line, &sh.run(&line));
        assert!(
            page["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
                || page["events"].as_array().is_some_and(|e| e.len() == 3),
            "`{line}`: {page}"
        );
    }
    // The security page's audit line, with an admin token in ADMIN.
    let admin = sh.run("ethgate token create --scope admin --label docs");
    sh.set("ADMIN", String::from_utf8_lossy(&admin.stdout).trim());
    for line in page_lines("docs/security.md", "curl") {
        let page = json(&line, &sh.run(&line));
        assert!(page["entries"].is_array(), "`{line}`: {page}");
    }
}

#[test]
fn the_chaos_proxy_block_runs_as_written() {
    assert_free(&[8545, 8546]);
    let mut sh = Shell::new();
    let _log = ShowLog(sh.dir.path().to_owned());
    let block = page_lines("docs/operations.md", "");
    let start = block
        .iter()
        .position(|l| l.starts_with("anvil "))
        .expect("the block that starts anvil");
    let mut asked = 0;
    for line in &block[start..] {
        if let Some(background) = line.strip_suffix('&') {
            sh.start(background);
        } else if line.starts_with("curl") {
            // A JSON-RPC call through the proxy first, so it has done something.
            let call = r#"curl -s -X POST -H 'content-type: application/json' --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' 127.0.0.1:8546"#;
            sh.run_when_up(call);
            let seen = json(line, &sh.run_when_up(line));
            assert!(seen.is_object(), "`{line}`: {seen}");
            asked += 1;
            break;
        }
    }
    assert_eq!(asked, 1, "the chaos block has no curl line");
}
