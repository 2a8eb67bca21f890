//! `linux.cgroupsPath` semantics, as runc implements them.
//!
//! * cgroupfs driver: an absolute path is taken from each hierarchy's root;
//!   a relative path is taken from the runtime's own cgroup in that
//!   hierarchy; an empty or missing path means the container id, relative.
//!   `..` can never climb above the starting point.
//! * systemd driver: `slice:prefix:name`, giving the unit `prefix-name.scope`
//!   under the expanded slice (`a-b.slice` lives in `/a.slice/a-b.slice`).

use crate::error::{Error, Result};
use std::path::Path;

/// Where the container's cgroup goes, before being placed on a hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPath {
    /// From the root of each hierarchy, e.g. `/berth/c1`.
    Absolute(String),
    /// From the runtime's own cgroup in each hierarchy, e.g. `c1`.
    Relative(String),
}

/// The slice a systemd cgroup goes into when cgroupsPath names none.
pub const DEFAULT_SYSTEMD_SLICE: &str = "system.slice";
/// The unit prefix when cgroupsPath is empty under --systemd-cgroup.
pub const DEFAULT_SYSTEMD_PREFIX: &str = "berth";

/// Resolves a cgroupfs-driver cgroupsPath.
pub fn resolve_cgroupfs(cgroups_path: Option<&str>, container_id: &str) -> Result<CgroupPath> {
    match cgroups_path.filter(|p| !p.is_empty()) {
        None => {
            check_container_id(container_id)?;
            Ok(CgroupPath::Relative(container_id.to_owned()))
        }
        Some(p) if p.starts_with('/') => Ok(CgroupPath::Absolute(clean_absolute(p))),
        Some(p) => {
            let cleaned = clean_absolute(&format!("/{p}"));
            if cleaned == "/" {
                return Err(Error::InvalidPath {
                    path: p.to_owned(),
                    reason: "a relative path must name a cgroup below the runtime's own",
                });
            }
            Ok(CgroupPath::Relative(cleaned[1..].to_owned()))
        }
    }
}

/// A systemd-driver cgroupsPath taken apart: the unit and its slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemdUnit {
    /// The slice the unit goes in, e.g. `system.slice`.
    pub slice: String,
    /// `prefix-name.scope`, or `name` when it is a slice itself.
    pub unit: String,
    /// The cgroup systemd gives the unit, from the hierarchy root.
    pub cgroup: String,
}

/// Parses `slice:prefix:name` (empty: the default slice, `berth`, the
/// container id) into the unit, its slice and the cgroup systemd uses.
pub fn parse_systemd(cgroups_path: Option<&str>, container_id: &str) -> Result<SystemdUnit> {
    let (slice, prefix, name) = match cgroups_path.filter(|p| !p.is_empty()) {
        None => {
            check_container_id(container_id)?;
            (DEFAULT_SYSTEMD_SLICE, DEFAULT_SYSTEMD_PREFIX, container_id)
        }
        Some(p) => split_systemd_path(p)?,
    };
    let slice = if slice.is_empty() {
        DEFAULT_SYSTEMD_SLICE
    } else {
        slice
    };
    let slice_dir = expand_slice(slice)?;
    let unit = unit_name(prefix, name)?;
    let cgroup = if slice_dir == "/" {
        format!("/{unit}")
    } else {
        format!("{slice_dir}/{unit}")
    };
    Ok(SystemdUnit {
        slice: slice.to_owned(),
        unit,
        cgroup,
    })
}

/// Resolves a systemd-driver cgroupsPath (`slice:prefix:name`) to the
/// cgroupfs path systemd itself would use for the scope.
pub fn resolve_systemd(cgroups_path: Option<&str>, container_id: &str) -> Result<CgroupPath> {
    parse_systemd(cgroups_path, container_id).map(|u| CgroupPath::Absolute(u.cgroup))
}

fn split_systemd_path(path: &str) -> Result<(&str, &str, &str)> {
    let parts: Vec<&str> = path.split(':').collect();
    match parts.as_slice() {
        [slice, prefix, name] => Ok((slice, prefix, name)),
        _ => Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "expected \"slice:prefix:name\" with --systemd-cgroup",
        }),
    }
}

/// `prefix-name.scope`, or `name` itself when it already is a slice.
fn unit_name(prefix: &str, name: &str) -> Result<String> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidPath {
            path: name.to_owned(),
            reason: "the systemd unit name must be non-empty and contain no '/'",
        });
    }
    if name.ends_with(".slice") {
        expand_slice(name)?;
        return Ok(name.to_owned());
    }
    if prefix.contains('/') {
        return Err(Error::InvalidPath {
            path: prefix.to_owned(),
            reason: "the systemd unit prefix must contain no '/'",
        });
    }
    Ok(if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    })
}

/// `a-b-c.slice` becomes `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is `/`.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = |reason| Error::InvalidPath {
        path: slice.to_owned(),
        reason,
    };
    let stem = slice
        .strip_suffix(".slice")
        .ok_or_else(|| bad("a systemd slice name must end in .slice"))?;
    if stem == "-" {
        return Ok("/".to_owned());
    }
    if stem.is_empty() || stem.contains('/') {
        return Err(bad(
            "a systemd slice name must be non-empty and contain no '/'",
        ));
    }
    if stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad("a systemd slice name has no empty '-' component"));
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(component);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// Lexically cleans an absolute path: no `.`, no empty components, and
/// `..` stops at `/`.
pub fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Joins a cgroup path (absolute within its hierarchy) below a mount,
/// accounting for the mount's own root (cgroup namespaces, bind mounts).
pub fn join_under_mount(mount_point: &Path, mount_root: &str, cgroup: &str) -> std::path::PathBuf {
    let relative = if mount_root != "/" {
        cgroup
            .strip_prefix(mount_root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(cgroup)
    } else {
        cgroup
    };
    let relative = relative.trim_start_matches('/');
    if relative.is_empty() {
        mount_point.to_owned()
    } else {
        mount_point.join(relative)
    }
}

/// Places a requested path within one hierarchy, given this process's
/// cgroup there. Returns the path from the hierarchy root.
pub fn place(request: &CgroupPath, own_cgroup: &str) -> String {
    match request {
        CgroupPath::Absolute(p) => p.clone(),
        CgroupPath::Relative(p) => clean_absolute(&format!("{own_cgroup}/{p}")),
    }
}

fn check_container_id(id: &str) -> Result<()> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(Error::InvalidPath {
            path: id.to_owned(),
            reason: "the container id cannot name a cgroup",
        });
    }
    Ok(())
}

/// Whether systemd is the running init (the sd_booted(3) test).
pub fn systemd_is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn empty_path_is_the_container_id_relative() {
        assert_eq!(
            resolve_cgroupfs(None, "c1").unwrap(),
            CgroupPath::Relative("c1".into())
        );
        assert_eq!(
            resolve_cgroupfs(Some(""), "c1").unwrap(),
            CgroupPath::Relative("c1".into())
        );
        assert!(resolve_cgroupfs(None, "../x").is_err());
    }

    #[test]
    fn absolute_paths_are_cleaned() {
        assert_eq!(
            resolve_cgroupfs(Some("/a//b/./c/"), "x").unwrap(),
            CgroupPath::Absolute("/a/b/c".into())
        );
        assert_eq!(
            resolve_cgroupfs(Some("/../../etc"), "x").unwrap(),
            CgroupPath::Absolute("/etc".into())
        );
    }

    #[test]
    fn relative_paths_cannot_climb() {
        assert_eq!(
            resolve_cgroupfs(Some("../../a/b"), "x").unwrap(),
            CgroupPath::Relative("a/b".into())
        );
        assert!(resolve_cgroupfs(Some(".."), "x").is_err());
    }

    #[test]
    fn relative_paths_go_below_own_cgroup() {
        let req = CgroupPath::Relative("berth/c1".into());
        assert_eq!(place(&req, "/process_api/abc"), "/process_api/abc/berth/c1");
        assert_eq!(place(&req, "/"), "/berth/c1");
        let abs = CgroupPath::Absolute("/k8s/pod".into());
        assert_eq!(place(&abs, "/somewhere"), "/k8s/pod");
    }

    #[test]
    fn systemd_paths_expand_slices() {
        assert_eq!(
            resolve_systemd(Some("system.slice:docker:abc"), "x").unwrap(),
            CgroupPath::Absolute("/system.slice/docker-abc.scope".into())
        );
        assert_eq!(
            resolve_systemd(Some("kubepods-burstable-pod1.slice:cri-containerd:c9"), "x").unwrap(),
            CgroupPath::Absolute(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-c9.scope"
                    .into()
            )
        );
        assert_eq!(
            resolve_systemd(None, "c1").unwrap(),
            CgroupPath::Absolute("/system.slice/berth-c1.scope".into())
        );
        assert_eq!(
            resolve_systemd(Some(":berth:c2"), "x").unwrap(),
            CgroupPath::Absolute("/system.slice/berth-c2.scope".into())
        );
        assert_eq!(
            resolve_systemd(Some("-.slice::c3"), "x").unwrap(),
            CgroupPath::Absolute("/c3.scope".into())
        );
        assert_eq!(
            resolve_systemd(Some("user.slice:x:my.slice"), "x").unwrap(),
            CgroupPath::Absolute("/user.slice/my.slice".into())
        );
    }

    #[test]
    fn systemd_paths_name_the_unit_and_slice() {
        let unit = parse_systemd(Some("machine.slice:berth:c1"), "x").unwrap();
        assert_eq!(unit.slice, "machine.slice");
        assert_eq!(unit.unit, "berth-c1.scope");
        assert_eq!(unit.cgroup, "/machine.slice/berth-c1.scope");
        let default = parse_systemd(Some(""), "c2").unwrap();
        assert_eq!(
            (default.slice.as_str(), default.unit.as_str()),
            ("system.slice", "berth-c2.scope")
        );
    }

    #[test]
    fn systemd_paths_reject_bad_forms() {
        assert!(resolve_systemd(Some("/plain/path"), "x").is_err());
        assert!(resolve_systemd(Some("a:b"), "x").is_err());
        assert!(resolve_systemd(Some("nosuffix:p:n"), "x").is_err());
        assert!(resolve_systemd(Some("a--b.slice:p:n"), "x").is_err());
        assert!(resolve_systemd(Some("system.slice:p:"), "x").is_err());
        assert!(resolve_systemd(Some("system.slice:p:a/b"), "x").is_err());
    }

    #[test]
    fn joins_below_mount_roots() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            join_under_mount(mp, "/", "/a/b"),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            join_under_mount(mp, "/docker/abc", "/docker/abc/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
        assert_eq!(
            join_under_mount(mp, "/docker/abc", "/docker/abcd"),
            PathBuf::from("/sys/fs/cgroup/memory/docker/abcd")
        );
        assert_eq!(join_under_mount(mp, "/", "/"), mp.to_owned());
    }
}
