//! Output files with no name until they are complete: created with O_TMPFILE
//! in the target's directory (an inode no directory lists), linked under their
//! name at the end. A failed run, or one killed even by SIGKILL, leaves nothing.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An unnamed file in `dest`'s directory, open for writing.
pub fn create(dest: &Path) -> io::Result<File> {
    if dest.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a C string path; the fd, when valid, is owned by the File at once.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o666 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// What linking an unnamed file needs, prepared ahead so that `link` makes no
/// allocation: it also runs in a child forked to keep privileges
/// (`crate::live::linker`).
pub struct LinkNames {
    /// /proc/self/fd/N: linkat(AT_SYMLINK_FOLLOW) on it names the inode (no
    /// CAP_DAC_READ_SEARCH needed, unlike AT_EMPTY_PATH).
    proc: CString,
    dest: CString,
    /// A hidden name beside `dest`, for replacing a file already there.
    spare: CString,
}

impl LinkNames {
    pub fn new(file: &File, dest: &Path) -> io::Result<LinkNames> {
        let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        let name = dest.file_name().ok_or(io::ErrorKind::InvalidInput)?;
        let spare = dest.with_file_name(format!(".{}.kaprobe-{}", name.to_string_lossy(), std::process::id()));
        Ok(LinkNames {
            proc: c(format!("/proc/self/fd/{}", file.as_raw_fd()).as_bytes())?,
            dest: c(dest.as_os_str().as_bytes())?,
            spare: c(spare.as_os_str().as_bytes())?,
        })
    }

    /// Gives the file (still open as the fd `new` saw) its name, replacing a
    /// file already there; the error number on failure.
    pub fn link(&self) -> Result<(), i32> {
        let link = |to: &CString| {
            // SAFETY: C strings; plain syscalls.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    self.proc.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(errno())
            }
        };
        match link(&self.dest) {
            Err(libc::EEXIST) => {}
            done => return done,
        }
        // linkat never replaces: link beside, then rename over (atomic).
        link(&self.spare)?;
        // SAFETY: C strings.
        if unsafe { libc::rename(self.spare.as_ptr(), self.dest.as_ptr()) } != 0 {
            let e = errno();
            // SAFETY: as above.
            unsafe { libc::unlink(self.spare.as_ptr()) };
            return Err(e);
        }
        Ok(())
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nameless_until_linked_and_replaces_an_older_file() {
        let dir = std::env::temp_dir().join(format!("kaprobe-tmpfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing visible yet");
        LinkNames::new(&f, &dest).unwrap().link().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no spare name left");
        drop(create(&dir.join("never")).unwrap());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "an unlinked file leaves nothing"
        );
        assert_eq!(create(&dir).unwrap_err().raw_os_error(), Some(libc::EISDIR));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
