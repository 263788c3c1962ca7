//! Checks an image before anything running is touched: its signature (when a
//! key is configured), that it is a Solo5 unikernel built for our tender's
//! target (an spt image is refused for solo5-hvt), and that its device
//! manifest asks for exactly the `--net:`/`--block:` devices configured, as
//! albatross does. The image was copied into `images/` while hashed
//! (`State::stage`), so the bytes checked are the bytes that will run.

use std::collections::BTreeSet;

use uk_digest::Staged;

use crate::config::{Config, Device, DeviceKind};
use crate::state::State;

/// Why an image is refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("refusing {image}: {why}")]
pub struct Refused {
    pub image: String,
    pub why: String,
}

fn fmt_devices(d: &BTreeSet<Device>) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.iter()
        .map(|d| format!("{}:{}", if d.kind == DeviceKind::Net { "net" } else { "block" }, d.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a staged image: its signature (when a key is configured), its
/// Solo5 target and its device manifest. Returns the signature to keep with
/// it; the error says why it is refused.
pub fn verify(cfg: &Config, state: &State, src: &std::path::Path, staged: &Staged) -> Result<Option<String>, String> {
    let signature = match &cfg.verify_key {
        Some(pk) => Some(check_signature(cfg, state, src, staged, pk)?),
        None => None,
    };
    let file = std::fs::File::open(staged.path()).map_err(|e| e.to_string())?;
    let info = match solo5_elf::read_solo5_info(std::io::BufReader::new(file)) {
        Ok(Some(i)) => i,
        Ok(None) => return Err("it is an ELF file but not a Solo5 unikernel (no Solo5 ABI note)".into()),
        Err(e) => return Err(format!("it is not a Solo5 unikernel: {e}")),
    };
    if info.abi.target != cfg.target {
        return Err(format!(
            "it is built for Solo5 target {}, but the tender {:?} runs {} images",
            info.abi.target.as_str(),
            cfg.tender.display(),
            cfg.target.as_str()
        ));
    }
    let wanted: BTreeSet<Device> = info
        .manifest
        .map(|m| {
            m.devices
                .into_iter()
                .map(|d| Device {
                    name: d.name,
                    kind: d.kind.into(),
                })
                .collect()
        })
        .unwrap_or_default();
    let configured: BTreeSet<Device> = cfg.devices.iter().cloned().collect();
    if wanted != configured {
        return Err(format!(
            "its device manifest asks for [{}] but the tender is configured with [{}]",
            fmt_devices(&wanted),
            fmt_devices(&configured)
        ));
    }
    Ok(signature)
}

/// The image's signature (`IMAGE.minisig`, minisign's own place, or the one
/// kept with the same image in `images/` when IMAGE is ours) must verify
/// with the key, name our job and digest if it names them, and be no older
/// than the signature of the image that runs now (downgrade protection; only
/// `rollback` goes back).
fn check_signature(
    cfg: &Config,
    state: &State,
    src: &std::path::Path,
    staged: &Staged,
    pk: &std::path::Path,
) -> Result<String, String> {
    let sig_path = format!("{}.minisig", src.display());
    let kept = crate::state::Image {
        sha256: staged.sha256,
        path: state.image_path(&staged.sha256, cfg.target),
    };
    let sig = match std::fs::read_to_string(&sig_path) {
        Ok(s) => s,
        Err(e) => state
            .signature(&kept)
            .ok_or_else(|| format!("it is not signed: reading {sig_path:?}: {e}"))?,
    };
    let signed = uk_signatures::verify_file(pk, &sig, staged.path(), Some(&cfg.job), &staged.sha256)
        .map_err(|e| format!("{e}"))?;
    if let Ok(Some(cur)) = state.link("current")
        && cur.sha256 != staged.sha256
        && let Some(cur_ts) = state.signed_timestamp(&cur)
        && signed.timestamp < cur_ts
    {
        return Err(format!(
            "downgrade: it was signed at {} but the current image {} was signed at {cur_ts} (use rollback to go back)",
            signed.timestamp, cur.sha256
        ));
    }
    Ok(sig)
}
