//! Tag listing, following `Link: <…>; rel="next"` pagination.

use ureq::http::Method;

use super::client::{self, Client, ClientOptions, Request};
use super::reference::RemoteRef;
use crate::error::{Context, Error, Result};

/// Pages followed at most, against a registry that links in circles.
const MAX_PAGES: usize = 1000;

pub fn list_tags(repo: &RemoteRef, opts: &ClientOptions) -> Result<Vec<String>> {
    let scope = format!("repository:{}:pull", repo.repository);
    let client = Client::connect(repo.api_host(), vec![scope], opts)?;
    let what = format!("list tags of {}", repo.name());
    let mut url = client.url(&format!("/v2/{}/tags/list", repo.repository));
    let mut tags = Vec::new();
    for _ in 0..MAX_PAGES {
        let mut resp = client.send(&Request::new(Method::GET, url.clone()), &what)?;
        if resp.status() == 404 {
            return Err(Error::ImageNotFound(repo.name()));
        }
        if !resp.status().is_success() {
            return Err(client::status_error(&what, &mut resp));
        }
        let next = client::header(&resp, "link").and_then(|l| next_link(&l));
        let body = client::read_small(&mut resp, &what)?;
        let page: serde_json::Value = serde_json::from_slice(&body).ctx(|| what.clone())?;
        let names = page.get("tags").and_then(|t| t.as_array());
        tags.extend(
            names
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(str::to_owned),
        );
        match next {
            Some(link) => url = client.location_url(&link),
            None => return Ok(tags),
        }
    }
    Err(Error::Registry {
        registry: client.registry().to_owned(),
        reason: format!("{what}: more than {MAX_PAGES} pages"),
    })
}

/// The target of `<url>; rel="next"` in a Link header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
