//! A small filesystem of the test's own, for filling a disk on purpose.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop-mounted ext4 filesystem, unmounted and removed on drop.
pub struct SmallDisk {
    image: PathBuf,
    pub mount: PathBuf,
}

impl SmallDisk {
    /// Makes a `mib` MiB filesystem in `directory` and mounts it there;
    /// Err says why it cannot (not root, no loop device).
    pub fn make(directory: &Path, mib: u64) -> Result<SmallDisk, String> {
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot loop-mount a small filesystem".to_string());
        }
        let image = directory.join("disk.img");
        let mount = directory.join("disk");
        fs::create_dir_all(&mount).map_err(|error| error.to_string())?;
        let file = fs::File::create(&image).map_err(|error| error.to_string())?;
        file.set_len(mib * 1024 * 1024).map_err(|error| error.to_string())?;
        let run = |program: &str, arguments: &[&str]| -> Result<(), String> {
            let output =
                Command::new(program).args(arguments).output().map_err(|error| format!("{program}: {error}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!("{program} {arguments:?}: {}", String::from_utf8_lossy(&output.stderr)))
            }
        };
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()])?;
        run("mount", &["-o", "loop", &image.to_string_lossy(), &mount.to_string_lossy()])?;
        Ok(SmallDisk { image, mount })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = fs::remove_file(&self.image);
    }
}
