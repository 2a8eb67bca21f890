//! Registry credentials (stored like docker's `config.json` "auths") and
//! the `WWW-Authenticate` challenges that say how to use them.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::fsutil;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, ***)", self.username)
    }
}

impl Credentials {
    /// The value of a `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", BASE64.encode(raw))
    }

    fn decode(auth: &str) -> Option<Credentials> {
        let raw = BASE64.decode(auth.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        Some(Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        })
    }
}

/// The credentials file: `--authfile`, else `$REGISTRY_AUTH_FILE`, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".docker/config.json")
}

/// Keys under which docker and podman may have stored a registry.
fn auth_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_owned());
        keys.push("docker.io".to_owned());
    }
    keys
}

fn read_config(path: &Path) -> Result<serde_json::Value> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Credentials {
            path: path.to_owned(),
            reason: format!("invalid JSON: {e}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(Error::Io {
            context: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// Look up the stored credentials for `registry`, if any.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let config = read_config(path)?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for key in auth_keys(registry) {
        let Some(entry) = auths.get(&key) else {
            continue;
        };
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            return Credentials::decode(auth)
                .map(Some)
                .ok_or_else(|| Error::Credentials {
                    path: path.to_owned(),
                    reason: format!("entry for {key} is not base64 of user:password"),
                });
        }
    }
    Ok(None)
}

/// Store credentials for `registry`, keeping every other field of the
/// file. The file is written atomically with mode 0600.
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut config = read_config(path)?;
    let raw = format!("{}:{}", creds.username, creds.password);
    let entry = serde_json::json!({ "auth": BASE64.encode(raw) });
    auths_mut(path, &mut config)?.insert(registry.to_owned(), entry);
    write_config(path, &config)
}

/// Forget `registry`; false when nothing was stored for it.
pub fn remove(path: &Path, registry: &str) -> Result<bool> {
    let mut config = read_config(path)?;
    let auths = auths_mut(path, &mut config)?;
    let mut removed = false;
    for key in auth_keys(registry) {
        removed |= auths.remove(&key).is_some();
    }
    if removed {
        write_config(path, &config)?;
    }
    Ok(removed)
}

fn auths_mut<'a>(
    path: &Path,
    config: &'a mut serde_json::Value,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>> {
    let bad = || Error::Credentials {
        path: path.to_owned(),
        reason: "not a JSON object with an \"auths\" object".into(),
    };
    let obj = config.as_object_mut().ok_or_else(bad)?;
    obj.entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(bad)
}

fn write_config(path: &Path, config: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::Io {
            context: format!("create {}", dir.display()),
            source: e,
        })?;
    }
    let mut data = serde_json::to_vec_pretty(config).map_err(|e| Error::Json {
        context: "serialize credentials".into(),
        source: e,
    })?;
    data.push(b'\n');
    fsutil::atomic_write(path, &data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| Error::Io {
        context: format!("chmod {}", path.display()),
        source: e,
    })
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-case scheme: `basic` or `bearer`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parse `Scheme k="v", k2=v2`. Quoted values may hold commas (the
    /// scope `repository:a:pull,push` does).
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
            if key.is_empty() || chars.next() != Some('=') {
                break;
            }
            let value = if chars.next_if_eq(&'"').is_some() {
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => v.extend(chars.next()),
                        '"' => break,
                        c => v.push(c),
                    }
                }
                v
            } else {
                std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>()
            };
            params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
    }

    #[test]
    fn credentials_round_trip_through_the_file_and_keep_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"credsStore":"x","auths":{"other:1":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let creds = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        store(&path, "localhost:5000", &creds).unwrap();
        assert_eq!(lookup(&path, "localhost:5000").unwrap(), Some(creds));
        assert_eq!(lookup(&path, "other:1").unwrap().unwrap().username, "a");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(remove(&path, "localhost:5000").unwrap());
        assert!(!remove(&path, "localhost:5000").unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("credsStore") && text.contains("other:1"),
            "{text}"
        );
    }

    #[test]
    fn malformed_credentials_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "not json").unwrap();
        assert!(lookup(&path, "r").is_err());
        fs::write(&path, r#"{"auths":{"r":{"auth":"!!!"}}}"#).unwrap();
        assert!(lookup(&path, "r").is_err());
        assert_eq!(lookup(&dir.path().join("none"), "r").unwrap(), None);
    }
}
