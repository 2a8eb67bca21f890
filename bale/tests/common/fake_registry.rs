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
    pub body: Vec<u8>,
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
    /// Answer this many token requests with 503 first.
    pub fail_token_gets: usize,
    /// Answer blob GETs with a 307 to /cdn/<digest>.
    pub redirect_blobs: bool,
    /// Upload sessions in progress.
    pub uploads: HashMap<String, Vec<u8>>,
    /// Blobs pushed or mounted, by repository (what HEAD and mounts see).
    pub linked: HashMap<String, HashSet<String>>,
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
        body,
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
        if st.fail_token_gets > 0 {
            st.fail_token_gets -= 1;
            return Reply::error(503, "UNAVAILABLE");
        }
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
    if let Some((repo, id)) = rest.split_once("/blobs/uploads/") {
        return upload(st, req, repo, id);
    }
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        if req.method == "PUT" {
            let media_type = req.headers.get("content-type").cloned().unwrap_or_default();
            let digest = bale::digest::Digest::of_bytes(&req.body).to_string();
            st.manifests
                .insert(reference.to_owned(), (media_type, req.body.clone()));
            return Reply::new(201).header("docker-content-digest", digest);
        }
        return match st.manifests.get(reference) {
            Some((media_type, bytes)) => Reply::new(200)
                .header("content-type", media_type.clone())
                .body(bytes.clone()),
            None => Reply::error(404, "MANIFEST_UNKNOWN"),
        };
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        if req.method == "HEAD" {
            let linked = st.linked.get(repo).is_some_and(|l| l.contains(digest));
            return match st.blobs.get(digest).filter(|_| linked) {
                Some(data) => Reply::new(200).body(data.clone()),
                None => Reply::new(404),
            };
        }
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

/// The scope a request needs, as distribution names it.
fn needed_scope(req: &Seen) -> Option<(String, &'static str)> {
    let path = req.path.split('?').next().unwrap_or("");
    let rest = path.strip_prefix("/v2/")?;
    let repo = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .find_map(|sep| rest.split_once(sep).map(|(r, _)| r))?;
    let action = if matches!(req.method.as_str(), "GET" | "HEAD") {
        "pull"
    } else {
        "push"
    };
    Some((repo.to_owned(), action))
}

/// Tokens are "tok" plus the granted scopes, space separated.
fn token_allows(token: &str, repo: &str, action: &str) -> bool {
    token.split(' ').skip(1).any(|scope| {
        let mut parts = scope.split(':');
        parts.next() == Some("repository")
            && parts.next() == Some(repo)
            && parts
                .next()
                .is_some_and(|a| a.split(',').any(|x| x == action))
    })
}

fn check_auth(st: &State, req: &Seen, addr: &str) -> Option<Reply> {
    if let Auth::Anonymous = st.auth {
        return None;
    }
    let token = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .filter(|t| t.starts_with("tok"));
    let mut challenge = format!(r#"Bearer realm="http://{addr}/token",service="fake""#);
    let ok = match (token, needed_scope(req)) {
        (Some(_), None) => true,
        (Some(t), Some((repo, action))) => {
            // A cross-repository mount also needs pull on the source.
            let from = query(&req.path, "from");
            token_allows(t, &repo, action) && from.is_none_or(|src| token_allows(t, &src, "pull"))
        }
        (None, _) => false,
    };
    if let (false, Some((repo, action))) = (ok, needed_scope(req)) {
        let actions = if action == "push" {
            "pull,push"
        } else {
            "pull"
        };
        challenge.push_str(&format!(r#",scope="repository:{repo}:{actions}""#));
    }
    (!ok).then(|| Reply::error(401, "UNAUTHORIZED").header("www-authenticate", challenge))
}

/// A decoded query parameter.
pub fn query(path: &str, key: &str) -> Option<String> {
    let (_, q) = path.split_once('?')?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let q = req.path.split_once('?').map_or("", |(_, q)| q);
    let mut token = String::from("tok");
    for kv in q.split('&') {
        if let Some(("scope", v)) = kv.split_once('=') {
            token.push(' ');
            token.push_str(&percent_decode(v));
        }
    }
    let body = serde_json::json!({ "token": token });
    Reply::new(200)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
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

/// POST (start, or mount), PATCH (append a chunk), PUT (finish) of blob
/// uploads, checked like distribution does: Content-Range must follow on,
/// and the digest must match what was sent.
fn upload(st: &mut State, req: &Seen, repo: &str, id: &str) -> Reply {
    let id = id.split('?').next().unwrap_or("");
    let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}?_state=opaque");
    match req.method.as_str() {
        "POST" => {
            if let (Some(d), Some(from)) = (query(&req.path, "mount"), query(&req.path, "from")) {
                if st.linked.get(&from).is_some_and(|l| l.contains(&d)) {
                    st.linked.entry(repo.to_owned()).or_default().insert(d);
                    return Reply::new(201);
                }
            }
            // Unique: one request, one session.
            let id = format!("u{}", st.seen.len());
            st.uploads.insert(id.clone(), Vec::new());
            Reply::new(202).header("location", location(&id))
        }
        "PATCH" | "PUT" => {
            let Some(data) = st.uploads.get_mut(id) else {
                return Reply::error(404, "BLOB_UPLOAD_UNKNOWN");
            };
            if let Some(range) = req.headers.get("content-range") {
                let start: usize = range
                    .split('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(usize::MAX);
                if start != data.len() {
                    return Reply::error(416, "BLOB_UPLOAD_INVALID");
                }
            }
            data.extend_from_slice(&req.body);
            if req.method == "PATCH" {
                let end = data.len().saturating_sub(1);
                return Reply::new(202)
                    .header("location", location(id))
                    .header("range", format!("0-{end}"));
            }
            let Some(want) = query(&req.path, "digest") else {
                return Reply::error(400, "DIGEST_INVALID");
            };
            let data = st.uploads.remove(id).unwrap_or_default();
            if bale::digest::Digest::of_bytes(&data).to_string() != want {
                return Reply::error(400, "DIGEST_INVALID");
            }
            st.linked
                .entry(repo.to_owned())
                .or_default()
                .insert(want.clone());
            st.blobs.insert(want, data);
            Reply::new(201)
        }
        _ => Reply::error(405, "UNSUPPORTED"),
    }
}
