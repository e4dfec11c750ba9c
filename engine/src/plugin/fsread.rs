//! Reading the files a plugin is made of (manifest, wasm, operator grants, cache entries): regular
//! files only, opened so that a FIFO cannot block the open, and never more than a limit.
//!
//! A path is whatever a spec or manifest says, so it may name a FIFO (the open would wait for a
//! writer forever), a character device such as `/dev/zero` (a read would never end) or a
//! directory. The file is opened with `O_NONBLOCK` (no effect on regular files), the *opened
//! handle's* metadata decides (no race with a rename between a check and the open), and the read
//! takes at most `limit + 1` bytes, so a file that grows while it is read is still refused.

use std::io::{self, Read};
use std::path::Path;

/// Why a file's type is refused, in words.
fn kind_name(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens `path` for reading without blocking on a FIFO, and checks that the opened file is a
/// regular file. `no_follow` refuses a symbolic link as the last component.
pub(crate) fn open_regular(path: &Path, no_follow: bool) -> io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
        if no_follow {
            flags |= libc::O_NOFOLLOW;
        }
        opts.custom_flags(flags);
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    let file = opts.open(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not read: only regular files are", kind_name(&ft)),
        ));
    }
    Ok(file)
}

/// Reads at most `limit` bytes of an open file; a longer file is an error (nothing past
/// `limit + 1` bytes is read).
pub(crate) fn read_capped(file: std::fs::File, limit: u64) -> io::Result<Vec<u8>> {
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(limit);
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than the limit of {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// Reads the regular file at `path`, refusing other file types and anything over `limit` bytes.
/// The error is the cause alone; callers name the path.
pub fn read_regular_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_capped(open_regular(path, false)?, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").expect("write");
        assert_eq!(read_regular_file(&p, 5).expect("fits"), b"12345");
        let e = read_regular_file(&p, 4).expect_err("too large");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than the limit of 4 bytes");
        let e = read_regular_file(dir.path(), 4).expect_err("a directory");
        assert_eq!(
            e.to_string(),
            "a directory is not read: only regular files are"
        );
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused_without_reading() {
        let e = read_regular_file(Path::new("/dev/zero"), 1 << 20).expect_err("a device");
        assert_eq!(
            e.to_string(),
            "a character device is not read: only regular files are"
        );
    }
}
