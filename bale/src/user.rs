//! Resolving an image's `User` against its own /etc/passwd and /etc/group.

use std::io::Read;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};
use crate::fsutil;

/// The process identity derived from an image config's `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolve `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) in
/// the image root `rootfs`. Files are opened with RESOLVE_IN_ROOT so an
/// image's symlinked /etc/passwd cannot make us read the host's files.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let passwd = read_in_root(rootfs, "etc/passwd").map(|t| parse_passwd(&t));
    let groups = read_in_root(rootfs, "etc/group").map(|t| parse_group(&t));
    let passwd = passwd.unwrap_or_default();
    let groups = groups.unwrap_or_default();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let fail = |reason: String| Error::User {
        user: user.to_owned(),
        reason,
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry =
        match user_part.parse::<u32>() {
            Ok(uid) => passwd.iter().find(|p| p.uid == uid),
            Err(_) => Some(passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
                fail(format!("no user {user_part:?} in the image's /etc/passwd"))
            })?),
        };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part.parse().map_err(|_| fail("bad uid".into()))?,
    };
    let gid = match group_part {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| fail(format!("no group {g:?} in the image's /etc/group")))?,
        },
        _ => entry.map_or(0, |e| e.gid),
    };
    // Supplementary groups only follow a user name, as with login(1); an
    // explicit group replaces them.
    let additional_gids = match (entry, group_part) {
        (Some(e), None) => {
            let mut gids: Vec<u32> = groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == &e.name) && g.gid != gid)
                .map(|g| g.gid)
                .collect();
            gids.sort_unstable();
            gids.dedup();
            gids
        }
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()),
    })
}

fn read_in_root(rootfs: &Path, path: &str) -> Option<String> {
    let root = fsutil::open_dir(rootfs).ok()?;
    let fd = rfs::openat2(
        &root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut text = String::new();
    // /etc/passwd of any sane image is far below 4 MiB.
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:root,app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn resolves_names_numbers_and_groups() {
        let root = rootfs();
        let u = resolve_user(root.path(), "app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![10, 29])
        );
        assert_eq!(u.home.as_deref(), Some("/home/app"));
        let u = resolve_user(root.path(), "1000:wheel").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(u.additional_gids.is_empty());
        let u = resolve_user(root.path(), "4242:4343").unwrap();
        assert_eq!((u.uid, u.gid, u.home), (4242, 4343, None));
        let u = resolve_user(root.path(), "").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(resolve_user(root.path(), "nobody").is_err());
        assert!(resolve_user(root.path(), "app:nogroup").is_err());
    }

    #[test]
    fn symlinked_passwd_stays_inside_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        // Absolute link: resolved inside the image root, where it is missing.
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(dir.path(), "root").is_err());
        assert_eq!(resolve_user(dir.path(), "0").unwrap().uid, 0);
    }
}
