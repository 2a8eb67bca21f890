//! Image references as used for tags in the store: `name[:tag]`.

use std::fmt;

use crate::error::{Error, Result};

/// A `name:tag` pair. The name may carry a registry domain with a port
/// (`localhost:5000/app`); the tag is what follows the last `:` after the
/// last `/`, defaulting to `latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = || Error::InvalidReference(input.to_owned());
        let last_slash = input.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match input[last_slash..].rfind(':') {
            Some(i) => (&input[..last_slash + i], &input[last_slash + i + 1..]),
            None => (input, "latest"),
        };
        if !valid_name(name) || !valid_tag(tag) {
            return Err(invalid());
        }
        Ok(Reference {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

pub(crate) fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts = name.split('/').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        // Only the first component of a multi-part name may be a domain
        // (with dots, a port, or upper case).
        let is_domain = first && parts.peek().is_some();
        first = false;
        let ok = if is_domain {
            valid_domain(part)
        } else {
            valid_path_component(part)
        };
        if !ok {
            return false;
        }
    }
    true
}

pub(crate) fn valid_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes[bytes.len() - 1].is_ascii_lowercase() | bytes[bytes.len() - 1].is_ascii_digit()
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

pub(crate) fn valid_domain(part: &str) -> bool {
    let (host, port) = match part.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (part, None),
    };
    let host_ok = host.starts_with(|c: char| c.is_ascii_alphanumeric())
        && host.ends_with(|c: char| c.is_ascii_alphanumeric())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_tags() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "alpine:latest");
        let r = Reference::parse("localhost:5000/team/app:v1.2").unwrap();
        assert_eq!(r.name, "localhost:5000/team/app");
        assert_eq!(r.tag, "v1.2");
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.tag, "latest");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "UPPER", "a:", "a:b:c", "../x", "a//b", "a:-x", "a b"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
