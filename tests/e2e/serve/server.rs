//! A `medallion serve` process for tests and a minimal HTTP/1.1 client over std's TcpStream
//! (no client crate needed): `Connection: close`, Content-Length or chunked responses,
//! bodies sent whole, streamed in chunks, or with a declared length.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{command, Env};

/// Keys of each role the test servers accept.
pub const INGEST_KEY: &str = "ingest-key-0123456789abcdef";
pub const OPERATOR_KEY: &str = "operator-key-0123456789abcdef";
pub const READER_KEY: &str = "reader-key-0123456789abcdef";

/// A running server, killed when dropped; its stderr goes to a file.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: std::path::PathBuf,
}

impl Server {
    /// Starts `medallion serve --listen 127.0.0.1:0` with the env's lake and landing zone,
    /// the three test keys, `extra` arguments and `vars`; waits for its "listening on" line.
    pub fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Server {
        let log = env.dir.path().join(format!("serve-{}.log", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()));
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if !extra.contains(&"--request-timeout") {
            args.extend(["--request-timeout", "20"]);
        }
        args.extend(extra);
        let mut c: Command = command(env, &args);
        c.env("MEDALLION_API_KEYS", format!("ingest:{INGEST_KEY}\noperator:{OPERATOR_KEY},reader:{READER_KEY}"))
            .env("MEDALLION_RETRY_BASE_MS", "50")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn medallion serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("medallion serve: listening on http://").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listening line: {line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Server { child, addr, log }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> Response {
        request(&self.addr, "GET", path, key, &[], Body::None)
    }

    pub fn delete(&self, path: &str, key: Option<&str>) -> Response {
        request(&self.addr, "DELETE", path, key, &[], Body::None)
    }

    pub fn post_json(&self, path: &str, key: Option<&str>, body: &serde_json::Value) -> Response {
        request(&self.addr, "POST", path, key, &[("Content-Type", "application/json")], Body::Whole(body.to_string().into_bytes()))
    }

    pub fn upload(&self, query: &str, key: Option<&str>, csv: &[u8]) -> Response {
        request(&self.addr, "POST", &format!("/v1/feeds?{query}"), key, &[("Content-Type", "text/csv")], Body::Whole(csv.to_vec()))
    }

    /// Polls a run until it is over (or `timeout`); returns its record.
    pub fn wait_run(&self, id: &str, timeout: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/v1/runs/{id}"), Some(READER_KEY));
            assert_eq!(r.status, 200, "{}", r.text());
            let run = r.json();
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            assert!(start.elapsed() < timeout, "run {id} still {} after {timeout:?}\n{}", run["status"], self.stderr());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -TERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum Body {
    None,
    Whole(Vec<u8>),
    /// Sent with Transfer-Encoding: chunked, `n` chunks of `chunk`.
    Chunked { chunk: Vec<u8>, n: usize },
    /// A declared Content-Length with only `send` bytes of it sent, then the client stops
    /// sending (closes its side: an aborted upload).
    Declared { length: u64, send: Vec<u8> },
    /// The same, but the connection stays open and silent (a stalled upload).
    Stalled { length: u64, send: Vec<u8> },
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// Asserts a problem document with this status and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text());
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["title"].is_string() && p["detail"].is_string() && p["exit_class"].is_string() && p["exit_code"].is_u64(), "{p}");
        p
    }
}

/// One request on a fresh connection.
pub fn request(addr: &str, method: &str, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: Body) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // The server may answer (413, 401…) and close before the body is sent: write errors are
    // ignored, the response is what counts.
    let _ = match body {
        Body::None => s.write_all(format!("{head}Content-Length: 0\r\n\r\n").as_bytes()),
        Body::Whole(b) => s.write_all(format!("{head}Content-Length: {}\r\n\r\n", b.len()).as_bytes()).and_then(|_| s.write_all(&b)),
        Body::Declared { length, send } => s
            .write_all(format!("{head}Content-Length: {length}\r\n\r\n").as_bytes())
            .and_then(|_| s.write_all(&send))
            .and_then(|_| s.shutdown(std::net::Shutdown::Write)),
        Body::Stalled { length, send } => s.write_all(format!("{head}Content-Length: {length}\r\n\r\n").as_bytes()).and_then(|_| s.write_all(&send)),
        Body::Chunked { chunk, n } => (|| {
            s.write_all(format!("{head}Transfer-Encoding: chunked\r\n\r\n").as_bytes())?;
            for _ in 0..n {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                s.write_all(&chunk)?;
                s.write_all(b"\r\n")?;
            }
            s.write_all(b"0\r\n\r\n")
        })(),
    };
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw).unwrap_or_else(|| panic!("{method} {path}: not an HTTP response: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n")?;
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(rest.get(nl + 2..nl + 2 + n)?);
            rest = rest.get(nl + 4 + n..)?;
        }
        body = out;
    }
    Some(Response { status, headers, body })
}
