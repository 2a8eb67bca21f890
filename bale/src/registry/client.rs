//! One registry, one repository: the HTTP side of the distribution spec.
//! Requests are retried with backoff on transient failures, and a 401
//! challenge is answered once per request (Basic, or a Bearer token from
//! the realm the registry names, scoped to the repositories we use).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ureq::http::{self, Response};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::SendBody;

use super::auth::{Challenge, Credentials};
use crate::error::{Error, Result};

/// Responses read whole (manifests, tokens, errors) are capped at this.
pub const MAX_SMALL_BODY: u64 = crate::store::MAX_JSON_BLOB;

/// How to reach a registry.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Check the server's certificate (and refuse plain HTTP unless the
    /// registry is on this host).
    pub tls_verify: bool,
    /// Extra trusted CA certificates (`*.crt`, PEM), added to the
    /// system's roots.
    pub cert_dir: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Tries per request (1 = no retry).
    pub attempts: u32,
    /// First retry delay; doubled per retry, capped at 8s.
    pub backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: true,
            cert_dir: None,
            credentials: None,
            attempts: 4,
            backoff: Duration::from_millis(250),
        }
    }
}

/// What to send as a request body. Bodies are re-created on each try,
/// so uploads of file ranges are retried like everything else.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        /// Told the position in the file as the body is sent.
        sent: Option<&'a dyn Fn(u64)>,
    },
}

pub struct Request<'a> {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
}

impl<'a> Request<'a> {
    pub fn new(method: http::Method, url: String) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

pub type HttpResponse = Response<ureq::Body>;

/// A connection to one registry with the auth state for a set of scopes.
pub struct Client {
    agent: ureq::Agent,
    /// `https://host:port` or `http://host:port`.
    base: String,
    registry: String,
    scopes: Vec<String>,
    credentials: Option<Credentials>,
    /// The Authorization header value once a challenge was answered.
    auth: Mutex<Option<String>>,
    attempts: u32,
    backoff: Duration,
}

impl Client {
    /// Connect to `registry` (`host[:port]`) and check it speaks the
    /// distribution API (`GET /v2/`). `scopes` are token scopes such as
    /// `repository:team/app:pull,push`.
    pub fn connect(registry: &str, scopes: Vec<String>, opts: &ClientOptions) -> Result<Client> {
        let agent = build_agent(registry, opts)?;
        let mut client = Client {
            agent,
            base: format!("https://{registry}"),
            registry: registry.to_owned(),
            scopes,
            credentials: opts.credentials.clone(),
            auth: Mutex::new(None),
            attempts: opts.attempts.max(1),
            backoff: opts.backoff,
        };
        if !allow_plain_http(registry, opts) {
            client.ping()?;
            return Ok(client);
        }
        // A registry on this host (or one we were told not to verify) may
        // speak plain HTTP: probe HTTPS once, without retries, then fall
        // back. If neither answers, the HTTPS error is the one to report.
        client.attempts = 1;
        let https = client.ping();
        client.attempts = opts.attempts.max(1);
        match https {
            Ok(()) => Ok(client),
            Err(https_error @ Error::Transport { .. }) if !is_certificate_error(&https_error) => {
                client.base = format!("http://{registry}");
                match client.ping() {
                    Ok(()) => Ok(client),
                    // Nothing, or an HTTPS server ("400: plain HTTP sent
                    // to an HTTPS port"), on plain HTTP either.
                    Err(Error::Transport { .. } | Error::HttpStatus { status: 400, .. }) => {
                        Err(https_error)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `base` + path, for paths starting with `/v2/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolve a `Location` header against the registry.
    pub fn location_url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// The API version check. 401 is fine here: it tells us how to
    /// authenticate, and we do so right away so that bad credentials
    /// fail early with a clear message.
    fn ping(&self) -> Result<()> {
        let what = format!("API version check of {}", self.registry);
        let req = Request::new(http::Method::GET, self.url("/v2/"));
        let mut resp = self.send(&req, &what)?;
        let version = header(&resp, "docker-distribution-api-version");
        if version
            .as_deref()
            .is_some_and(|v| !v.starts_with("registry/2."))
        {
            return Err(Error::Registry {
                registry: self.registry.clone(),
                reason: format!("unsupported API version {version:?}"),
            });
        }
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            404 => Err(Error::Registry {
                registry: self.registry.clone(),
                reason: "no /v2/ endpoint: not an OCI distribution registry".into(),
            }),
            _ => Err(status_error(&what, &mut resp)),
        }
    }

    /// Send a request: retried on transient failures, a 401 answered once.
    /// Any other status is returned for the caller to judge.
    pub fn send(&self, req: &Request<'_>, what: &str) -> Result<HttpResponse> {
        let mut answered_challenge = false;
        let mut attempt = 0;
        loop {
            let last_try = attempt + 1 >= self.attempts;
            match self.send_once(req) {
                Ok(mut resp) if resp.status() == 401 => {
                    let challenge =
                        header(&resp, "www-authenticate").and_then(|h| Challenge::parse(&h));
                    match challenge {
                        Some(ch) if !answered_challenge => {
                            answered_challenge = true;
                            drain(&mut resp);
                            self.answer(&ch, what)?;
                        }
                        _ => {
                            return Err(Error::Unauthorized {
                                what: what.to_owned(),
                                detail: registry_detail(&mut resp),
                            })
                        }
                    }
                }
                Ok(mut resp) if is_retryable_status(resp.status().as_u16()) && !last_try => {
                    let wait = retry_after(&resp).unwrap_or_else(|| self.delay(attempt));
                    drain(&mut resp);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if is_transient(&e) && !last_try => {
                    std::thread::sleep(self.delay(attempt));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Transport {
                        what: what.to_owned(),
                        cause: Box::new(e),
                    })
                }
            }
        }
    }

    /// Backoff before retry number `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << attempt.min(6))
            .min(Duration::from_secs(8))
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn send_once(&self, req: &Request<'_>) -> std::result::Result<HttpResponse, ureq::Error> {
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(&req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        let auth = self.auth.lock().map(|a| a.clone()).unwrap_or(None);
        if let Some(auth) = auth.filter(|_| self.is_own_url(&req.url)) {
            builder = builder.header("authorization", auth);
        }
        match &req.body {
            Body::Empty => self.agent.run(builder.body(())?),
            Body::Bytes(data) => self.agent.run(builder.body(*data)?),
            Body::File {
                path,
                offset,
                len,
                sent,
            } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                let mut reader = ReportingReader {
                    inner: file.take(*len),
                    position: *offset,
                    sent: *sent,
                };
                let body = SendBody::from_reader(&mut reader);
                let request = builder
                    .header("content-length", len.to_string())
                    .body(body)?;
                self.agent.run(request)
            }
        }
    }

    /// Run a bodiless request outside the auth flow (the token endpoint),
    /// retrying transient failures and 5xx like [`Client::send`].
    fn run_with_retries(
        &self,
        request: &http::Request<()>,
    ) -> std::result::Result<HttpResponse, ureq::Error> {
        let mut attempt = 0;
        loop {
            let last_try = attempt + 1 >= self.attempts;
            match self.agent.run(request.clone()) {
                Ok(resp) if is_retryable_status(resp.status().as_u16()) && !last_try => {}
                Err(e) if is_transient(&e) && !last_try => {}
                other => return other,
            }
            std::thread::sleep(self.delay(attempt));
            attempt += 1;
        }
    }

    /// Credentials go only to the registry itself, never to a host a
    /// Location header points at.
    fn is_own_url(&self, url: &str) -> bool {
        url.strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Answer a challenge: Basic with the credentials, or fetch a token.
    fn answer(&self, ch: &Challenge, what: &str) -> Result<()> {
        let value = match ch.scheme.as_str() {
            "basic" => match &self.credentials {
                Some(c) => c.basic_header(),
                None => {
                    return Err(Error::Unauthorized {
                        what: what.to_owned(),
                        detail: format!(" (no credentials for {}: use bale login)", self.registry),
                    })
                }
            },
            "bearer" => format!("Bearer {}", self.fetch_token(ch, what)?),
            other => {
                return Err(Error::Unauthorized {
                    what: what.to_owned(),
                    detail: format!(" (unsupported scheme {other:?})"),
                })
            }
        };
        if let Ok(mut auth) = self.auth.lock() {
            *auth = Some(value);
        }
        Ok(())
    }

    /// The token flow: GET realm?service=…&scope=… (with Basic
    /// credentials when we have them) → `{"token": …}`.
    fn fetch_token(&self, ch: &Challenge, what: &str) -> Result<String> {
        let realm = ch.param("realm").ok_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            reason: "Bearer challenge without a realm".into(),
        })?;
        // Credentials never travel in clear text to a token server when
        // the registry itself is reached over TLS.
        if self.base.starts_with("https://") && !realm.starts_with("https://") {
            return Err(Error::Registry {
                registry: self.registry.clone(),
                reason: format!("token realm {realm:?} is not HTTPS"),
            });
        }
        let mut query = Vec::new();
        if let Some(service) = ch.param("service") {
            query.push(format!("service={}", encode_query(service)));
        }
        let mut scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        for s in ch.param("scope").into_iter().flat_map(|s| s.split(' ')) {
            if !s.is_empty() && !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        for s in scopes {
            query.push(format!("scope={}", encode_query(s)));
        }
        if let Some(c) = &self.credentials {
            query.push(format!("account={}", encode_query(&c.username)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let token_what = format!("{what}: token from {realm}");
        let mut builder = http::Request::builder().method("GET").uri(&url);
        if let Some(c) = &self.credentials {
            builder = builder.header("authorization", c.basic_header());
        }
        let request = builder.body(()).map_err(|e| Error::Transport {
            what: token_what.clone(),
            cause: Box::new(e.into()),
        })?;
        let mut resp = self
            .run_with_retries(&request)
            .map_err(|e| Error::Transport {
                what: token_what.clone(),
                cause: Box::new(e),
            })?;
        if resp.status() == 401 || resp.status() == 403 {
            return Err(Error::Unauthorized {
                what: token_what,
                detail: registry_detail(&mut resp),
            });
        }
        if !resp.status().is_success() {
            return Err(status_error(&token_what, &mut resp));
        }
        let body = read_small(&mut resp, &token_what)?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::Json {
            context: token_what.clone(),
            source: e,
        })?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::Registry {
                registry: self.registry.clone(),
                reason: format!("{token_what}: no token in the answer"),
            })
    }
}

/// Counts what passes through and tells `sent` (upload progress).
struct ReportingReader<'a, R> {
    inner: R,
    position: u64,
    sent: Option<&'a dyn Fn(u64)>,
}

impl<R: Read> Read for ReportingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        if let Some(sent) = self.sent {
            sent(self.position);
        }
        Ok(n)
    }
}

/// A server that speaks TLS but whose certificate we refuse: never a
/// reason to try plain HTTP.
fn is_certificate_error(e: &Error) -> bool {
    let is_cert = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    };
    match e {
        Error::Transport { cause, .. } => match &**cause {
            ureq::Error::Rustls(e) => is_cert(e),
            // The TLS stream reports handshake failures as io errors.
            ureq::Error::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(is_cert),
            _ => false,
        },
        _ => false,
    }
}

fn allow_plain_http(registry: &str, opts: &ClientOptions) -> bool {
    !opts.tls_verify || is_loopback(registry)
}

/// localhost, 127.x.y.z or `[::1]`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn build_agent(registry: &str, opts: &ClientOptions) -> Result<ureq::Agent> {
    let tls = if opts.tls_verify {
        TlsConfig::builder()
            .root_certs(trusted_roots(registry, opts.cert_dir.as_deref())?)
            .build()
    } else {
        TlsConfig::builder().disable_verification(true).build()
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("bale/", env!("CARGO_PKG_VERSION")))
        .max_redirects(10)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .tls_config(tls)
        .build();
    Ok(config.new_agent())
}

/// The system's CA roots plus `*.crt` from `cert_dir` (or, by default,
/// `/etc/containers/certs.d/HOST` and `/etc/docker/certs.d/HOST` as
/// podman and docker use).
fn trusted_roots(registry: &str, cert_dir: Option<&Path>) -> Result<RootCerts> {
    let mut certs = system_roots().clone();
    let dirs: Vec<PathBuf> = match cert_dir {
        Some(d) => vec![d.to_owned()],
        None => ["/etc/containers/certs.d", "/etc/docker/certs.d"]
            .iter()
            .map(|d| Path::new(d).join(registry))
            .collect(),
    };
    for dir in dirs {
        certs.extend(certs_in(&dir, cert_dir.is_some())?);
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// The host's CA roots, read once per process (parsing them is slow).
fn system_roots() -> &'static Vec<Certificate<'static>> {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect()
    })
}

fn certs_in(dir: &Path, must_exist: bool) -> Result<Vec<Certificate<'static>>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(Error::Io {
                context: format!("read certificate directory {}", dir.display()),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Io {
                context: format!("read {}", dir.display()),
                source: e,
            })?
            .path();
        if path.extension().is_none_or(|e| e != "crt") {
            continue;
        }
        let pem = fs::read(&path).map_err(|e| Error::Io {
            context: format!("read {}", path.display()),
            source: e,
        })?;
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => out.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "certificate {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Failures worth another try: the network, not the request.
pub fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::BodyStalled
            | ureq::Error::Protocol(_)
    )
}

fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    let secs: u64 = header(resp, "retry-after")?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

pub fn header(resp: &HttpResponse, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Read a small body whole, refusing more than [`MAX_SMALL_BODY`].
pub fn read_small(resp: &mut HttpResponse, what: &str) -> Result<Vec<u8>> {
    resp.body_mut()
        .with_config()
        .limit(MAX_SMALL_BODY)
        .read_to_vec()
        .map_err(|e| Error::Transport {
            what: what.to_owned(),
            cause: Box::new(e),
        })
}

/// Read and drop what is left of a body so the connection can be reused.
fn drain(resp: &mut HttpResponse) {
    let _ = std::io::copy(
        &mut resp.body_mut().as_reader().take(1 << 16),
        &mut std::io::sink(),
    );
}

/// `": CODE: message"` from a registry's error JSON, or the start of the
/// body as text, or nothing.
pub fn registry_detail(resp: &mut HttpResponse) -> String {
    let mut body = Vec::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(1 << 16)
        .read_to_end(&mut body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    if let Some(err) = first {
        let code = err.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let msg = err.get("message").and_then(|c| c.as_str()).unwrap_or("");
        return format!(": {code}: {msg}");
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.chars().take(200).collect::<String>())
    }
}

/// The error for an unexpected status, with the registry's explanation.
pub fn status_error(what: &str, resp: &mut HttpResponse) -> Error {
    let status = resp.status().as_u16();
    Error::HttpStatus {
        what: what.to_owned(),
        status,
        detail: registry_detail(resp),
    }
}

/// Percent-encode a query value (everything but RFC 3986 unreserved).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Add `key=value` to a URL that may already have a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_query(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode_query("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(
            with_query("/u?x=1", "digest", "sha256:ab"),
            "/u?x=1&digest=sha256%3Aab"
        );
        assert_eq!(with_query("/u", "digest", "d"), "/u?digest=d");
    }
}
