//! `user = "NAME"`: the tender runs unprivileged. The user and its groups
//! (hvt needs only `/dev/kvm`, e.g. through the `kvm` group) are looked up
//! once, when the configuration is loaded, because the lookup (NSS) is not
//! safe between `fork` and `exec`; the child then only makes the three
//! system calls [`TenderUser::become_user`] makes.

use std::ffi::{CStr, CString};

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenderUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included.
    pub groups: Vec<u32>,
}

impl TenderUser {
    pub fn resolve(name: &str) -> anyhow::Result<TenderUser> {
        let c_name = CString::new(name).with_context(|| format!("user {name:?}"))?;
        // SAFETY: getpwnam_r writes into our buffers only; `pw` is read only
        // when `found` points at it.
        let (uid, gid) = unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(c_name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc)).with_context(|| format!("looking up user {name:?}"));
            }
            if found.is_null() {
                bail!("user = {name:?}: no such user");
            }
            (pw.pw_uid, pw.pw_gid)
        };
        if uid == 0 {
            bail!("user = {name:?} is root: the tender must run unprivileged (or leave user unset)");
        }
        Ok(TenderUser {
            name: name.to_owned(),
            uid,
            gid,
            groups: groups_of(&c_name, gid)?,
        })
    }

    /// In the child, before `exec`: drop to this user for good (groups
    /// first, then the group, then the user; a failure fails the spawn).
    /// Only async-signal-safe system calls.
    pub fn become_user(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on values we own.
        unsafe {
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
                || libc::setgid(self.gid) != 0
                || libc::setuid(self.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // setuid from root sets every uid: there is no way back.
            if libc::setuid(0) == 0 {
                return Err(std::io::Error::other(
                    "could still become root after dropping privileges",
                ));
            }
        }
        Ok(())
    }
}

fn groups_of(name: &CStr, gid: u32) -> anyhow::Result<Vec<u32>> {
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: getgrouplist writes at most `n` entries and sets `n`.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65536 {
            bail!("user {name:?} is in too many groups");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_refused_and_unknown_users_are_errors() {
        let err = TenderUser::resolve("root").unwrap_err();
        assert!(format!("{err:#}").contains("unprivileged"), "{err:#}");
        assert!(TenderUser::resolve("no-such-user-ukrepo").is_err());
        let nobody = TenderUser::resolve("nobody").unwrap();
        assert_ne!(nobody.uid, 0);
        assert!(nobody.groups.contains(&nobody.gid));
    }
}
