//! Tests against real Solo5 images, and against truncated and corrupted
//! copies of them (which must error, never panic). The images are the
//! committed fixtures in `fixtures/`: the ELF header, program headers and
//! Solo5 notes of images built by `scripts/solo5.sh`, byte for byte, with
//! code and data dropped (`fixtures/make-fixtures.py` made them), so these
//! tests need no toolchain. The end-to-end tests read full images.

use std::io::Cursor;
use std::path::PathBuf;

use super::*;

fn images() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read(bytes: &[u8]) -> Result<Option<Solo5Info>, Error> {
    read_solo5_info(Cursor::new(bytes))
}

/// Offset of the note header of type `n_type` owned by "Solo5".
fn note_at(img: &[u8], n_type: u32) -> usize {
    (0..img.len() - 20)
        .find(|&i| img[i + 12..i + 18] == *b"Solo5\0" && img[i + 8..i + 12] == n_type.to_le_bytes())
        .expect("note in image")
}

#[test]
fn reads_abi_and_manifest_of_real_images() {
    let dir = images();
    let hvt = std::fs::read(dir.join("needsnet.hvt")).unwrap();
    let info = read(&hvt).unwrap().expect("a solo5 image");
    assert_eq!(info.abi.target, Target::Hvt);
    assert_eq!(info.abi.version, 1);
    let m = info.manifest.expect("manifest");
    assert_eq!(
        m.devices,
        vec![Device {
            name: "service".into(),
            kind: DeviceType::NetBasic
        }]
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        serde_json::json!({"type": "solo5.manifest", "version": 1, "devices": [{"name": "service", "type": "NET_BASIC"}]})
    );

    let spt = std::fs::read(dir.join("needsnet.spt")).unwrap();
    let info = read(&spt).unwrap().unwrap();
    assert_eq!(info.abi.target, Target::Spt);
    assert_eq!(info.abi.version, 1);
    assert_eq!(
        serde_json::to_value(&info.abi).unwrap(),
        serde_json::json!({"type": "solo5.abi", "target": "spt", "version": 1})
    );

    let ticker = std::fs::read(dir.join("ticker-v1.hvt")).unwrap();
    let info = read(&ticker).unwrap().unwrap();
    assert_eq!(info.abi.target, Target::Hvt);
    assert_eq!(info.manifest.unwrap().devices, vec![]);
}

#[test]
fn non_solo5_files() {
    assert!(matches!(read(b"hello world, not an elf"), Err(Error::NotElf)));
    assert!(matches!(read(b""), Err(Error::NotElf)));
    // A real ELF that is not a unikernel: this very test binary.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(read(&me).unwrap(), None);
}

#[test]
fn truncated_images_are_errors_never_panics() {
    let img = std::fs::read(images().join("needsnet.hvt")).unwrap();
    assert!(read(&img).unwrap().is_some());
    // Every cut inside the program headers or the notes loses something
    // the reader needs: an error, never a partial answer.
    for len in 64..img.len() {
        assert!(
            read(&img[..len]).is_err(),
            "a cut at {len} of {} was not an error",
            img.len()
        );
    }
}

#[test]
fn corrupted_images_never_panic() {
    let img = std::fs::read(images().join("needsnet.hvt")).unwrap();
    // Overwrite every byte of the ELF and program headers and of the notes.
    let mut targets: Vec<usize> = (0..0x200.min(img.len())).collect();
    let mft = note_at(&img, MFT1_NOTE_TYPE);
    targets.extend(mft..(mft + 0x120).min(img.len()));
    for i in targets {
        for v in [0x00, 0xff, 0x7f, 0x41] {
            let mut bad = img.clone();
            bad[i] = v;
            let _ = read(&bad);
        }
    }
}

#[test]
fn hostile_manifest_entry_count_is_an_error() {
    let mut img = std::fs::read(images().join("needsnet.hvt")).unwrap();
    // header (20) + padding (4) + version (4), then the entry count.
    let at = note_at(&img, MFT1_NOTE_TYPE) + 28;
    img[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let err = read(&img).unwrap_err();
    assert!(err.to_string().contains("1000 entries"), "{err}");
}

// Property tests (also run for longer by scripts/fuzz.sh; failures found
// are kept by proptest in proptest-regressions/ and replayed here).
proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
        let _ = read(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_an_elf_header_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
        let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
        bytes.extend(tail);
        let _ = read(&bytes);
    }

    #[test]
    fn mutated_real_images_never_panic(edits in proptest::collection::vec((0usize..200_000, proptest::num::u8::ANY), 1..16), cut in 0usize..200_000) {
        let mut img = real_image().clone();
        for (at, v) in edits {
            let at = at % img.len();
            img[at] = v;
        }
        img.truncate(cut.max(1).min(img.len()));
        let _ = read(&img);
    }
}

fn real_image() -> &'static Vec<u8> {
    static IMG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| std::fs::read(images().join("needsnet.hvt")).unwrap())
}
