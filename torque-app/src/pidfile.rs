//! `--pid-file`: written at startup, removed at exit, refused while another live
//! process owns it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A pid file that removes itself when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes our pid to `path`. A file naming a live process is an error that
    /// names it; a stale one (its process gone) is replaced.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        if let Ok(text) = fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid != std::process::id() as i32 && crate::platform::process_alive(pid) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} names process {pid}, which is still running", path.display()),
                    ));
                }
            }
        }
        let mut file = fs::File::create(path)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidFile { path: path.to_owned() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pid");
        {
            let _pid = PidFile::create(&path).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap().trim(), std::process::id().to_string());
        }
        assert!(!path.exists(), "removed on drop");
        // PID 1 is always alive.
        fs::write(&path, "1\n").unwrap();
        let err = PidFile::create(&path).unwrap_err();
        assert!(err.to_string().contains("still running"), "{err}");
        // A stale file is replaced.
        fs::write(&path, "999999999\n").unwrap();
        drop(PidFile::create(&path).unwrap());
    }
}
