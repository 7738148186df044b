//! Giving up privileges once the raw socket and the capture are open: to the
//! invoking user when run through sudo, otherwise every capability is dropped
//! (root without capabilities can still write its own files). Must run before
//! any thread is started: capabilities are per thread.

/// The user sudo was invoked by, when running as root through sudo.
pub fn sudo_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

/// What `drop_privileges` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Now running as this (sudo's) user.
    ToUser(u32, u32),
    /// Still the same user, with no capabilities left.
    Capabilities,
    /// Could not drop (reported, not fatal).
    Nothing,
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

pub fn drop_privileges() -> Dropped {
    if let Some((uid, gid)) = sudo_user() {
        // SAFETY: plain credential syscalls; glibc applies them to every thread.
        let ok =
            unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(gid) == 0 && libc::setuid(uid) == 0 };
        return if ok {
            Dropped::ToUser(uid, gid)
        } else {
            Dropped::Nothing
        };
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
    if r == 0 {
        Dropped::Capabilities
    } else {
        Dropped::Nothing
    }
}
