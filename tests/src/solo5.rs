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

/// For a test that runs solo5-hvt: true when `/dev/kvm` opens. When it does
/// not, the test fails, unless `UKREPO_SKIP_KVM=1` says explicitly to skip
/// it (then false: the caller returns without testing anything).
pub fn hvt_or_skip(test: &str) -> bool {
    if kvm_available() {
        return true;
    }
    if std::env::var("UKREPO_SKIP_KVM").is_ok_and(|v| v == "1") {
        eprintln!("{test}: SKIPPED: /dev/kvm cannot be opened and UKREPO_SKIP_KVM=1");
        return false;
    }
    panic!("{test} needs solo5-hvt, and /dev/kvm cannot be opened here; set UKREPO_SKIP_KVM=1 to skip it explicitly");
}

/// The target to run host tests under: hvt (with the rule of
/// [`hvt_or_skip`]), or spt when hvt is explicitly skipped.
pub fn host_target(test: &str) -> &'static str {
    if hvt_or_skip(test) { "hvt" } else { "spt" }
}

/// Whether hardware virtualisation is usable here (solo5-hvt needs it).
pub fn kvm_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
