//! Giving up privileges once the raw sockets and the capture are open. As
//! root: to the invoking user under sudo, to nobody otherwise; either way with
//! no_new_privs and an empty capability bounding set, so nothing kaprobe runs
//! or execs can get them back. Not root (CAP_NET_RAW given to the binary):
//! every capability dropped. Must run before any thread is started: the
//! bounding set and no_new_privs are per thread, inherited by threads created
//! afterwards.

use super::LiveError;
use std::io;

/// The unprivileged account's fallback ids (nobody/nogroup on Debian).
const NOBODY: u32 = 65_534;

/// The user sudo was invoked by, when running as root through sudo.
pub fn sudo_user() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Who a root session continues as: sudo's user, else nobody/nogroup.
pub fn target_user() -> (u32, u32) {
    sudo_user().unwrap_or_else(nobody)
}

/// nobody's uid and nogroup's gid (nobody's own group where there is no
/// nogroup), 65534 when the names are unknown.
fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam/getgrnam with C strings, during set-up (one thread);
    // the records are read at once.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        let uid = pw.as_ref().map_or(NOBODY, |p| p.pw_uid);
        let gr = libc::getgrnam(c"nogroup".as_ptr());
        let gid = gr
            .as_ref()
            .map(|g| g.gr_gid)
            .or_else(|| pw.as_ref().map(|p| p.pw_gid))
            .unwrap_or(NOBODY);
        (uid, gid)
    }
}

fn check(what: &str, r: libc::c_int) -> Result<(), LiveError> {
    if r == 0 {
        Ok(())
    } else {
        Err(LiveError::os(
            format!("drop privileges: {what}"),
            &io::Error::last_os_error(),
        ))
    }
}

/// The highest capability number this kernel knows.
fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Empties the capability bounding set (needs CAP_SETPCAP: before setuid).
fn empty_bounding_set() -> Result<(), LiveError> {
    for cap in 0..=cap_last_cap() {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        // EINVAL: a number past what cap_last_cap said, nothing to drop.
        if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            check("bounding set", r)?;
        }
    }
    Ok(())
}

fn no_new_privs() -> Result<(), LiveError> {
    // SAFETY: prctl with integer arguments.
    check("no_new_privs", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })
}

/// What `drop_privileges` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Now running as this user (sudo's, or nobody).
    ToUser(u32, u32),
    /// Still the same user, with no capabilities left.
    Capabilities,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

pub fn drop_privileges() -> Result<Dropped, LiveError> {
    if is_root() {
        let (uid, gid) = target_user();
        empty_bounding_set()?;
        // SAFETY: credential syscalls; glibc applies them to every thread.
        unsafe {
            check("setgroups", libc::setgroups(0, std::ptr::null()))?;
            check("setresgid", libc::setresgid(gid, gid, gid))?;
            check("setresuid", libc::setresuid(uid, uid, uid))?;
        }
        no_new_privs()?;
        return Ok(Dropped::ToUser(uid, gid));
    }
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset(2) with a v3 header and two data words.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    check("capset", r as libc::c_int)?;
    no_new_privs()?;
    Ok(Dropped::Capabilities)
}
