//! Spawning the real `baton` binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `baton serve` on a free port.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `baton serve` on port 0 against the SQLite file at `db`, and waits for its
    /// "listening on" line.
    pub fn start(db: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}", db.display()))
            .env("BATON_LOG", "warn")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn baton serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let started = Instant::now();
        let base = loop {
            let line = lines.next().expect("server printed its address").expect("read stderr");
            if let Some(addr) = line.strip_prefix("baton: listening on ") {
                break addr.trim().to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// Kills the process with SIGKILL (no shutdown path runs) and waits for it.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
