//! A small fake registry on 127.0.0.1 for the pull tests: it serves fixed
//! manifests and blobs, speaks Basic or Bearer auth, and can misbehave on
//! purpose (corrupt a blob, cut a download short, fail with 503, redirect
//! blob downloads elsewhere). It records every request it sees.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    Anonymous,
    /// Bearer tokens from /token, which wants these Basic credentials.
    Bearer { user: String, password: String },
}

/// What the server serves and how it misbehaves.
#[derive(Default)]
pub struct State {
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
    pub auth: Auth,
    /// Serve these blobs with one byte flipped.
    pub corrupt: HashSet<String>,
    /// The next full GET of these blobs sends half the body, then hangs up.
    pub cut_once: HashSet<String>,
    /// Answer this many blob GETs with 503 first.
    pub fail_blob_gets: usize,
    /// Answer blob GETs with a 307 to /cdn/<digest>.
    pub redirect_blobs: bool,
    pub seen: Vec<Seen>,
}

pub struct FakeRegistry {
    pub addr: String,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    pub fn start(state: State) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, addr) = (state.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, addr) = (state.clone(), addr.clone());
                    std::thread::spawn(move || serve(conn, &state, &addr));
                }
            })
        };
        FakeRegistry {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn seen_paths(&self, method: &str, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close.
    cut_at: Option<usize>,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_at: None,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Reply {
        self.body = b;
        self
    }
    fn error(status: u16, code: &str) -> Reply {
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"fake says {code}"}}]}}"#);
        Reply::new(status)
            .header("content-type", "application/json")
            .body(body.into_bytes())
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, addr: &str) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let Some(seen) = read_request(&mut reader) else {
        return;
    };
    let reply = {
        let mut st = state.lock().unwrap();
        st.seen.push(seen.clone());
        route(&mut st, &seen, addr)
    };
    let _ = write_reply(&conn, &seen, &reply);
    let _ = conn.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    // Plain HTTP only: a TLS hello (the client's HTTPS probe) is hung up on.
    let first = *reader.fill_buf().ok()?.first()?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
    })
}

fn write_reply(mut conn: &TcpStream, req: &Seen, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    conn.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return Ok(());
    }
    let end = reply.cut_at.unwrap_or(reply.body.len());
    conn.write_all(&reply.body[..end])?;
    conn.flush()
}

fn route(st: &mut State, req: &Seen, addr: &str) -> Reply {
    let path = req.path.split('?').next().unwrap_or("");
    if path == "/token" {
        return token(st, req);
    }
    if let Some(digest) = path.strip_prefix("/cdn/") {
        return blob(st, req, digest);
    }
    if let Some(reply) = check_auth(st, req, addr) {
        return reply;
    }
    if path == "/v2/" {
        return Reply::new(200).header("docker-distribution-api-version", "registry/2.0");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Reply::error(404, "NOT_FOUND");
    };
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        return match st.manifests.get(reference) {
            Some((media_type, bytes)) => Reply::new(200)
                .header("content-type", media_type.clone())
                .body(bytes.clone()),
            None => Reply::error(404, "MANIFEST_UNKNOWN"),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        if st.fail_blob_gets > 0 {
            st.fail_blob_gets -= 1;
            return Reply::error(503, "UNAVAILABLE");
        }
        if st.redirect_blobs {
            return Reply::new(307).header("location", format!("http://{addr}/cdn/{digest}"));
        }
        return blob(st, req, digest);
    }
    Reply::error(404, "NOT_FOUND")
}

fn check_auth(st: &State, req: &Seen, addr: &str) -> Option<Reply> {
    match &st.auth {
        Auth::Anonymous => None,
        Auth::Bearer { .. } => {
            let ok = req
                .headers
                .get("authorization")
                .is_some_and(|a| a == "Bearer good-token");
            (!ok).then(|| {
                Reply::error(401, "UNAUTHORIZED").header(
                    "www-authenticate",
                    format!(r#"Bearer realm="http://{addr}/token",service="fake""#),
                )
            })
        }
    }
}

fn token(st: &State, req: &Seen) -> Reply {
    let Auth::Bearer { user, password } = &st.auth else {
        return Reply::error(404, "NOT_FOUND");
    };
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    if req.headers.get("authorization") != Some(&want) {
        return Reply::error(401, "UNAUTHORIZED");
    }
    Reply::new(200)
        .header("content-type", "application/json")
        .body(br#"{"token":"good-token"}"#.to_vec())
}

fn blob(st: &mut State, req: &Seen, digest: &str) -> Reply {
    let Some(mut data) = st.blobs.get(digest).cloned() else {
        return Reply::error(404, "BLOB_UNKNOWN");
    };
    if st.corrupt.contains(digest) {
        if let Some(b) = data.last_mut() {
            *b ^= 0xff;
        }
    }
    let range_start = req
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    if let Some(start) = range_start {
        if start >= data.len() {
            return Reply::error(416, "RANGE_INVALID");
        }
        let total = data.len();
        return Reply::new(206)
            .header(
                "content-range",
                format!("bytes {start}-{}/{total}", total - 1),
            )
            .body(data.split_off(start));
    }
    let mut reply = Reply::new(200).body(data);
    if st.cut_once.remove(digest) {
        reply.cut_at = Some(reply.body.len() / 2);
    }
    reply
}
