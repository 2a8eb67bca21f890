//! Which cgroup hierarchies the host has mounted, and where this process
//! sits in each of them.
//!
//! Everything here is parsed from text (`/proc/self/mountinfo`,
//! `/proc/self/cgroup`) so it can be unit-tested; [`Hierarchies::detect`]
//! reads the real files and double-checks with `statfs`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The controllers a v1 hierarchy can carry, as named in mount options and
/// in /proc/self/cgroup.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// How the host organises its cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// Only the cgroup2 hierarchy (every current distribution).
    Unified,
    /// v1 hierarchies carry the controllers, plus a cgroup2 mount (usually
    /// /sys/fs/cgroup/unified) which may carry the controllers v1 lacks.
    Hybrid,
}

/// One mounted v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Mount {
    /// Controllers and `name=` labels bound to this hierarchy.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy is the mount's root (not "/" inside a
    /// cgroup namespace or for a bind mount).
    pub root: String,
}

/// The cgroup2 mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

/// Every mounted hierarchy of the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchies {
    pub v1: Vec<V1Mount>,
    pub unified: Option<V2Mount>,
}

/// This process's cgroup in each hierarchy, from /proc/self/cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnCgroups {
    /// Controller (or `name=` label) to path.
    pub v1: BTreeMap<String, String>,
    /// The "0::" line.
    pub unified: Option<String>,
}

impl Hierarchies {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Hierarchies> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let hierarchies = Hierarchies::parse_mountinfo(&text)?;
        if hierarchies.v1.is_empty() && hierarchies.unified.is_none() {
            return Err(Error::NoCgroupMounts(path.to_owned()));
        }
        Ok(hierarchies)
    }

    /// Parses the text of a mountinfo file, keeping cgroup mounts only.
    pub fn parse_mountinfo(text: &str) -> Result<Hierarchies> {
        let mut hierarchies = Hierarchies {
            v1: Vec::new(),
            unified: None,
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry = MountinfoEntry::parse(line)?;
            match entry.fstype {
                "cgroup2" => hierarchies.add_unified(entry),
                "cgroup" => hierarchies.add_v1(entry),
                _ => {}
            }
        }
        Ok(hierarchies)
    }

    /// The layout, as runc and crun name it.
    pub fn layout(&self) -> Layout {
        let v1_has_controllers = self
            .v1
            .iter()
            .any(|m| m.controllers.iter().any(|c| !c.starts_with("name=")));
        match (v1_has_controllers, self.unified.is_some()) {
            (true, true) => Layout::Hybrid,
            (true, false) => Layout::V1,
            (false, _) => Layout::Unified,
        }
    }

    /// The v1 hierarchy carrying `controller`, if mounted.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller))
    }

    fn add_unified(&mut self, entry: MountinfoEntry<'_>) {
        // Prefer the conventional places when several cgroup2 mounts exist
        // (a container's own view bind-mounted somewhere, for instance).
        let conventional = entry.mount_point == Path::new("/sys/fs/cgroup")
            || entry.mount_point == Path::new("/sys/fs/cgroup/unified");
        let keep_existing = self
            .unified
            .as_ref()
            .is_some_and(|u| u.mount_point.starts_with("/sys/fs/cgroup") || !conventional);
        if !keep_existing {
            self.unified = Some(V2Mount {
                mount_point: entry.mount_point,
                root: entry.root,
            });
        }
    }

    fn add_v1(&mut self, entry: MountinfoEntry<'_>) {
        let controllers: Vec<String> = entry
            .super_options
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_owned)
            .collect();
        if controllers.is_empty() {
            return;
        }
        // A hierarchy mounted twice (bind mounts) keeps its first mount.
        if self.v1.iter().any(|m| m.controllers == controllers) {
            return;
        }
        self.v1.push(V1Mount {
            controllers,
            mount_point: entry.mount_point,
            root: entry.root,
        });
    }
}

/// The fields of one mountinfo line this crate needs.
struct MountinfoEntry<'a> {
    root: String,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

impl<'a> MountinfoEntry<'a> {
    /// `id parent maj:min root mount_point options [optional...] - fstype source super_options`
    fn parse(line: &'a str) -> Result<Self> {
        let bad = || Error::Parse {
            file: "/proc/self/mountinfo",
            line: line.to_owned(),
        };
        let (before, after) = line.split_once(" - ").ok_or_else(bad)?;
        let mut fields = before.split(' ');
        let root = fields.nth(3).ok_or_else(bad)?;
        let mount_point = fields.next().ok_or_else(bad)?;
        let mut tail = after.split(' ');
        let fstype = tail.next().ok_or_else(bad)?;
        let _source = tail.next().ok_or_else(bad)?;
        let super_options = tail.next().unwrap_or("");
        Ok(MountinfoEntry {
            root: unescape_octal(root),
            mount_point: PathBuf::from(unescape_octal(mount_point)),
            fstype,
            super_options,
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b));
        if escaped {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl OwnCgroups {
    /// Reads /proc/self/cgroup.
    pub fn detect() -> Result<OwnCgroups> {
        let path = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        OwnCgroups::parse(&text)
    }

    /// Parses `hierarchy-id:controllers:path` lines.
    pub fn parse(text: &str) -> Result<OwnCgroups> {
        let mut own = OwnCgroups::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::Parse {
                    file: "/proc/self/cgroup",
                    line: line.to_owned(),
                });
            };
            if id == "0" && controllers.is_empty() {
                own.unified = Some(path.to_owned());
                continue;
            }
            for controller in controllers.split(',').filter(|c| !c.is_empty()) {
                own.v1.insert(controller.to_owned(), path.to_owned());
            }
        }
        Ok(own)
    }
}

/// Whether `path` is on a cgroup2 filesystem (statfs magic).
pub fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const V1_COMBINED: &str = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    #[test]
    fn detects_hybrid() {
        let h = Hierarchies::parse_mountinfo(HYBRID).unwrap();
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(h.v1.len(), 4);
        assert_eq!(
            h.v1_mount("memory").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            h.unified.as_ref().unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert!(h.v1_mount("name=systemd").is_some());
        assert!(h.v1_mount("pids").is_none());
    }

    #[test]
    fn detects_unified() {
        let h = Hierarchies::parse_mountinfo(UNIFIED).unwrap();
        assert_eq!(h.layout(), Layout::Unified);
        assert!(h.v1.is_empty());
    }

    #[test]
    fn detects_v1_with_combined_controllers_and_roots() {
        let h = Hierarchies::parse_mountinfo(V1_COMBINED).unwrap();
        assert_eq!(h.layout(), Layout::V1);
        let cpu = h.v1_mount("cpuacct").unwrap();
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(cpu.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h.v1_mount("pids").unwrap().root, "/docker/abc");
    }

    #[test]
    fn only_named_v1_hierarchy_counts_as_unified() {
        let text = "\
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let h = Hierarchies::parse_mountinfo(text).unwrap();
        assert_eq!(h.layout(), Layout::Unified);
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_octal("/a\\040b"), "/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal("/trail\\04"), "/trail\\04");
    }

    #[test]
    fn rejects_garbage_mountinfo() {
        assert!(Hierarchies::parse_mountinfo("not a mountinfo line").is_err());
    }

    #[test]
    fn parses_proc_self_cgroup() {
        let own = OwnCgroups::parse(
            "9:name=systemd:/\n4:memory:/process_api/36673\n2:cpu,cpuacct:/x\n0::/user.slice\n",
        )
        .unwrap();
        assert_eq!(own.v1["memory"], "/process_api/36673");
        assert_eq!(own.v1["cpu"], "/x");
        assert_eq!(own.v1["cpuacct"], "/x");
        assert_eq!(own.v1["name=systemd"], "/");
        assert_eq!(own.unified.as_deref(), Some("/user.slice"));
        assert!(OwnCgroups::parse("garbage").is_err());
    }
}
