//! Where blobs came from or went to (`registry/repository`), so a push to
//! a registry that already has a blob in another repository can mount it
//! instead of uploading it again. Kept in `bale/sources.json` in the
//! store, written under the store lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use crate::digest::Digest;
use crate::error::{Context, Result};
use crate::fsutil;
use crate::store::Store;

/// Digest → set of `registry/repository` names.
#[derive(Default, Debug)]
pub struct Sources {
    map: BTreeMap<String, BTreeSet<String>>,
}

const FILE: &str = "bale/sources.json";
/// Names remembered per blob; the oldest go first.
const MAX_PER_BLOB: usize = 16;

impl Sources {
    /// Load the record; a damaged one is ignored (it is only a hint).
    pub fn load(store: &Store) -> Result<Sources> {
        let path = store.root().join(FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sources::default()),
            Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
        };
        Ok(Sources {
            map: serde_json::from_slice(&data).unwrap_or_default(),
        })
    }

    /// Repositories on `registry` known to hold `digest`, except `not`.
    pub fn repositories_on(&self, digest: &Digest, registry: &str, not: &str) -> Vec<String> {
        let prefix = format!("{registry}/");
        self.map
            .get(&digest.to_string())
            .into_iter()
            .flatten()
            .filter_map(|name| name.strip_prefix(&prefix))
            .filter(|repo| *repo != not)
            .map(str::to_owned)
            .collect()
    }

    pub fn add(&mut self, digest: &Digest, registry: &str, repository: &str) {
        let set = self.map.entry(digest.to_string()).or_default();
        set.insert(format!("{registry}/{repository}"));
        while set.len() > MAX_PER_BLOB {
            let Some(first) = set.iter().next().cloned() else {
                break;
            };
            set.remove(&first);
        }
    }

    /// Save, dropping blobs no longer in the store.
    pub fn save(&mut self, store: &Store) -> Result<()> {
        self.map
            .retain(|d, _| d.parse::<Digest>().is_ok_and(|d| store.has_blob(&d)));
        let data = serde_json::to_vec(&self.map).ctx(|| "serialize blob sources".to_owned())?;
        fsutil::atomic_write(&store.root().join(FILE), &data)
    }
}
