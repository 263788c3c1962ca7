//! Reads the two Solo5 notes of a unikernel image, natively and without
//! loading the whole file: the ABI note (which tender it is built for, e.g.
//! `hvt` or `spt`, and the ABI version) and the device manifest (the network
//! and block devices it expects). The repository shows them as `solo5_abi` /
//! `solo5_manifest`; `deploy-hvt` checks them against its tender and devices.
//!
//! The layout follows Solo5 v0.7.2 `include/elf_abi.h` and `mft_abi.h`; the
//! note walk mirrors `tenders/common/elf.c` (a 20-byte note header, the
//! descriptor aligned to its struct's alignment). Every length is checked, so a
//! truncated or hostile file gives an error, never a panic.

mod notes;

pub use notes::{Abi, Device, DeviceType, Error, Manifest, Solo5Info, Target, read_solo5_info};
