//! ELF program-header walk and Solo5 note decoding (see the crate docs).

use std::io::{Read, Seek};

use object::elf::{FileHeader64, PT_NOTE};
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};
use serde::Serialize;

const NOTE_NAME: &[u8; 6] = b"Solo5\0";
const ABI1_NOTE_TYPE: u32 = 0x3149_4241; // "ABI1"
const MFT1_NOTE_TYPE: u32 = 0x3154_464d; // "MFT1"
/// 12 bytes of n_namesz/n_descsz/n_type plus the name padded to 8.
const NHDR_SIZE: usize = 20;
const MFT_MAX_ENTRIES: u32 = 64;
const MFT_NAME_SIZE: usize = 68;
const MFT_ENTRY_SIZE: usize = 104;
const MFT_RESERVED_FIRST: u32 = 1 << 30;
/// Largest note we read: the biggest legal manifest plus slack.
const MAX_NOTE: u64 = 8 + 64 * 104 + 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit ELF file")]
    Not64Bit,
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("malformed Solo5 {note} note: {why}")]
    BadNote { note: &'static str, why: String },
    #[error("reading the image: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Hvt,
    Spt,
    Virtio,
    Muen,
    Genode,
    Xen,
    #[serde(rename = "unknown")]
    Unknown,
}

impl Target {
    fn from_raw(n: u32) -> Target {
        match n {
            1 => Target::Hvt,
            2 => Target::Spt,
            3 => Target::Virtio,
            4 => Target::Muen,
            5 => Target::Genode,
            6 => Target::Xen,
            _ => Target::Unknown,
        }
    }

    /// The name Solo5 uses, also the file suffix of images (`x.hvt`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Hvt => "hvt",
            Target::Spt => "spt",
            Target::Virtio => "virtio",
            Target::Muen => "muen",
            Target::Genode => "genode",
            Target::Xen => "xen",
            Target::Unknown => "unknown",
        }
    }
}

/// The ABI note, serialised as `solo5-elftool query-abi` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Abi {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: Target,
    pub version: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeviceType {
    #[serde(rename = "BLOCK_BASIC")]
    BlockBasic,
    #[serde(rename = "NET_BASIC")]
    NetBasic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
}

/// The manifest, serialised as `solo5-elftool query-manifest` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub version: u32,
    pub devices: Vec<Device>,
}

/// What a Solo5 image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solo5Info {
    pub abi: Abi,
    pub manifest: Option<Manifest>,
}

/// Reads the Solo5 notes of an ELF image. `Ok(None)`: a valid ELF that is not
/// a Solo5 unikernel (no ABI note).
pub fn read_solo5_info<R: Read + Seek>(reader: R) -> Result<Option<Solo5Info>, Error> {
    let cache = ReadCache::new(reader);
    let data = &cache;
    let ident: &[u8] = data.read_bytes_at(0, 16).map_err(|_| Error::NotElf)?;
    if &ident[..4] != b"\x7fELF" {
        return Err(Error::NotElf);
    }
    if ident[4] != 2 {
        return Err(Error::Not64Bit);
    }
    let header = FileHeader64::<Endianness>::parse(data).map_err(|e| Error::Malformed(e.to_string()))?;
    let endian = header.endian().map_err(|e| Error::Malformed(e.to_string()))?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    let mut abi = None;
    let mut manifest = None;
    for ph in phdrs {
        if ph.p_type(endian) != PT_NOTE {
            continue;
        }
        let (off, size) = (ph.p_offset(endian), ph.p_filesz(endian).min(MAX_NOTE));
        let bytes: &[u8] = data
            .read_bytes_at(off, size)
            .map_err(|_| Error::Malformed(format!("note segment at offset {off} runs past the end of the file")))?;
        let Some((n_type, desc)) = solo5_note(bytes, endian)? else {
            continue;
        };
        match n_type {
            ABI1_NOTE_TYPE => abi = Some(decode_abi(desc, endian)?),
            MFT1_NOTE_TYPE => manifest = Some(decode_manifest(desc, endian)?),
            _ => {}
        }
    }
    Ok(abi.map(|abi| Solo5Info { abi, manifest }))
}

fn u32_at(b: &[u8], at: usize, endian: Endianness) -> Option<u32> {
    let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(match endian {
        Endianness::Little => u32::from_le_bytes(raw),
        Endianness::Big => u32::from_be_bytes(raw),
    })
}

/// `(n_type, descriptor)` when the segment starts with a Solo5-owned note.
fn solo5_note(bytes: &[u8], endian: Endianness) -> Result<Option<(u32, &[u8])>, Error> {
    let (Some(namesz), Some(descsz), Some(n_type)) = (
        u32_at(bytes, 0, endian),
        u32_at(bytes, 4, endian),
        u32_at(bytes, 8, endian),
    ) else {
        return Ok(None);
    };
    if namesz as usize != NOTE_NAME.len() || bytes.get(12..18) != Some(&NOTE_NAME[..]) {
        return Ok(None);
    }
    let note = if n_type == MFT1_NOTE_TYPE { "manifest" } else { "ABI" };
    let desc = bytes
        .get(NHDR_SIZE..NHDR_SIZE.saturating_add(descsz as usize))
        .ok_or_else(|| Error::BadNote {
            note,
            why: format!("descriptor of {descsz} bytes is truncated"),
        })?;
    Ok(Some((n_type, desc)))
}

fn decode_abi(desc: &[u8], endian: Endianness) -> Result<Abi, Error> {
    let bad = |why: &str| Error::BadNote {
        note: "ABI",
        why: why.into(),
    };
    let target = u32_at(desc, 0, endian).ok_or_else(|| bad("too short"))?;
    let version = u32_at(desc, 4, endian).ok_or_else(|| bad("too short"))?;
    Ok(Abi {
        kind: "solo5.abi",
        target: Target::from_raw(target),
        version,
    })
}

fn decode_manifest(desc: &[u8], endian: Endianness) -> Result<Manifest, Error> {
    let bad = |why: String| Error::BadNote { note: "manifest", why };
    // struct mft is 8-aligned: 4 bytes of padding follow the 20-byte header.
    let m = desc.get(4..).ok_or_else(|| bad("too short".into()))?;
    let version = u32_at(m, 0, endian).ok_or_else(|| bad("too short".into()))?;
    let entries = u32_at(m, 4, endian).ok_or_else(|| bad("too short".into()))?;
    if entries > MFT_MAX_ENTRIES {
        return Err(bad(format!("{entries} entries, at most {MFT_MAX_ENTRIES} allowed")));
    }
    let mut devices = Vec::new();
    for i in 0..entries as usize {
        let start = 8 + i * MFT_ENTRY_SIZE;
        let e = m
            .get(start..start + MFT_ENTRY_SIZE)
            .ok_or_else(|| bad(format!("entry {i} of {entries} is truncated")))?;
        let raw_name = &e[..MFT_NAME_SIZE];
        let nul = raw_name
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(format!("entry {i}: name is not terminated")))?;
        let name = std::str::from_utf8(&raw_name[..nul]).map_err(|_| bad(format!("entry {i}: name is not UTF-8")))?;
        let kind = match u32_at(e, MFT_NAME_SIZE, endian).unwrap_or(0) {
            1 => DeviceType::BlockBasic,
            2 => DeviceType::NetBasic,
            MFT_RESERVED_FIRST => continue,
            other => return Err(bad(format!("entry {i}: unknown device type {other}"))),
        };
        devices.push(Device {
            name: name.to_owned(),
            kind,
        });
    }
    Ok(Manifest {
        kind: "solo5.manifest",
        version,
        devices,
    })
}

#[cfg(test)]
mod tests;
