//! A local AWS KMS for the KMS signer's tests: `kms-emulator` (moto's
//! server with digest signing added, installed by `scripts/install-tools`)
//! on a free port, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, tool};

/// A running KMS emulator.
pub struct KmsEmulator {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl KmsEmulator {
    /// Starts one and waits until it answers.
    pub async fn start() -> KmsEmulator {
        let port = free_port();
        let child = Command::new(tool("kms-emulator"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kms-emulator runs (scripts/install-tools installs it)");
        let kms = KmsEmulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{}/moto-api/", kms.url))
                .send()
                .await
                .is_ok()
            {
                return kms;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("kms-emulator did not start on {}", kms.url);
    }
}

impl Drop for KmsEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
