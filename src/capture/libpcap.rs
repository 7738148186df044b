//! The main reader: libpcap, nanosecond precision.

use super::{pcapng, CaptureError, ReadSummary, Record};
use crate::decode::LinkType;
use std::path::Path;

/// libpcap's words when a pcapng interface's link type differs from the first's.
const MIXED_LINK_TYPES: &str = "different from the type of the first interface";
const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;

pub fn read(
    path: &Path,
    name: &str,
    mut each: impl FnMut(&Record),
) -> Result<ReadSummary, CaptureError> {
    let mut cap =
        pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).map_err(|e| {
            CaptureError::Open {
                path: name.to_string(),
                why: open_reason(&e),
            }
        })?;
    let code = cap.get_datalink().0 as u32;
    let link = LinkType::from_code(code);
    // Byte offsets are given for classic pcap; pcapng blocks are not exposed by libpcap.
    let classic = !is_pcapng(path);
    let mut sum = ReadSummary::default();
    loop {
        let record = sum.records + 1;
        match cap.next_packet() {
            Ok(p) => {
                let time = p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64;
                sum.records = record;
                sum.unknown_link += link.is_none() as u64;
                each(&Record {
                    frame: record,
                    time,
                    link,
                    link_code: code,
                    data: p.data,
                    wire_len: p.header.len,
                });
            }
            Err(pcap::Error::NoMorePackets) => return Ok(sum),
            Err(e) if e.to_string().contains(MIXED_LINK_TYPES) => {
                let more = pcapng::read_from(path, name, sum.records, &mut each)?;
                sum.records += more.records;
                sum.unknown_link += more.unknown_link;
                sum.used_fallback = true;
                return Ok(sum);
            }
            Err(e) => {
                return Err(CaptureError::Read {
                    path: name.to_string(),
                    record,
                    offset: classic.then(|| record_offset(path, record)).flatten(),
                    why: libpcap_reason(&e),
                })
            }
        }
    }
}

/// Byte offset of record `n` (1-based) of a classic pcap, from the on-disk
/// record headers (libpcap reports caplen already cut to the snaplen).
fn record_offset(path: &Path, n: u64) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).ok()?;
    let big = matches!(magic, [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]);
    let mut offset = PCAP_FILE_HEADER;
    for _ in 1..n {
        let mut h = [0u8; PCAP_RECORD_HEADER as usize];
        f.seek(SeekFrom::Start(offset)).ok()?;
        f.read_exact(&mut h).ok()?;
        let caplen = [h[8], h[9], h[10], h[11]];
        let caplen = if big {
            u32::from_be_bytes(caplen)
        } else {
            u32::from_le_bytes(caplen)
        };
        offset += PCAP_RECORD_HEADER + caplen as u64;
    }
    Some(offset)
}

fn is_pcapng(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x0a, 0x0d, 0x0d, 0x0a]
}

fn libpcap_reason(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

fn open_reason(e: &pcap::Error) -> String {
    let s = libpcap_reason(e);
    if s.contains("unknown file format") {
        "not a pcap or pcapng file (unknown file format)".into()
    } else if s.contains("truncated dump file") || s.contains("truncated pcapng") {
        format!("truncated file header: {s}")
    } else {
        s
    }
}
