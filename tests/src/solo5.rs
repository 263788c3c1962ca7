//! Solo5 for tests: `scripts/solo5.sh` builds (once, idempotently) the
//! tenders, the toolchain and our test unikernels under `target/solo5/`.

use std::path::PathBuf;
use std::process::Command;

/// The folder `scripts/solo5.sh` built into (holds `bin/` and `images/`).
pub fn solo5_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/solo5.sh"))
        .output()
        .expect("run scripts/solo5.sh");
    assert!(
        out.status.success(),
        "scripts/solo5.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn solo5_images() -> PathBuf {
    solo5_dir().join("images")
}

pub fn tender(name: &str) -> PathBuf {
    solo5_dir().join("bin").join(name)
}

/// Whether hardware virtualisation is usable here (solo5-hvt needs it).
pub fn kvm_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
