//! Fallback pcapng reader (pcap-parser) for files libpcap refuses: interfaces
//! with different link types. Starts over and skips the records already read.

use super::{CaptureError, ReadSummary, Record};
use crate::decode::LinkType;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use std::path::Path;

const BUFFER: usize = 1 << 20;

struct Interface {
    code: u32,
    link: Option<LinkType>,
    /// Units per second.
    resolution: u64,
    offset_s: i64,
}

/// Reads records after the first `skip` packet records of `path`.
pub fn read_from(
    path: &Path,
    name: &str,
    skip: u64,
    each: &mut impl FnMut(&Record),
) -> Result<ReadSummary, CaptureError> {
    let file = std::fs::File::open(path).map_err(|e| CaptureError::Open {
        path: name.into(),
        why: e.to_string(),
    })?;
    let mut reader = PcapNGReader::new(BUFFER, file).map_err(|e| CaptureError::Open {
        path: name.into(),
        why: format!("pcapng: {e:?}"),
    })?;
    let mut ifaces: Vec<Interface> = Vec::new();
    let (mut seen, mut sum, mut offset) = (0u64, ReadSummary::default(), 0u64);
    // Two refills in a row without a block in between: the last block is cut short.
    let mut starved = false;
    let fail = |record: u64, offset: u64, why: String| CaptureError::Read {
        path: name.into(),
        record,
        offset: Some(offset),
        why,
    };
    loop {
        match reader.next() {
            Ok((len, block)) => {
                let packet = match &block {
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        ifaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let code = idb.linktype.0 as u32;
                        ifaces.push(Interface {
                            code,
                            link: LinkType::from_code(code),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset_s: idb.ts_offset(),
                        });
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let i = ifaces.get(epb.if_id as usize).ok_or_else(|| {
                            fail(
                                seen + 1,
                                offset,
                                format!(
                                    "packet names interface {} but only {} are described",
                                    epb.if_id,
                                    ifaces.len()
                                ),
                            )
                        })?;
                        let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ns = (ts as u128 * 1_000_000_000 / i.resolution.max(1) as u128) as i128
                            + i.offset_s as i128 * 1_000_000_000;
                        Some((i, ns.max(0) as u64, epb.packet_data(), epb.orig_len()))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let i = ifaces.first().ok_or_else(|| {
                            fail(
                                seen + 1,
                                offset,
                                "simple packet before any interface".into(),
                            )
                        })?;
                        Some((i, 0, spb.packet_data(), spb.orig_len()))
                    }
                    _ => None,
                };
                if let Some((i, time, data, wire_len)) = packet {
                    seen += 1;
                    if seen > skip {
                        sum.records += 1;
                        sum.unknown_link += i.link.is_none() as u64;
                        each(&Record {
                            frame: seen,
                            time,
                            link: i.link,
                            link_code: i.code,
                            data,
                            wire_len,
                        });
                    }
                }
                offset += len as u64;
                reader.consume(len);
                starved = false;
            }
            Err(PcapError::Eof) => return Ok(sum),
            Err(PcapError::Incomplete(_)) if !starved => {
                starved = true;
                reader
                    .refill()
                    .map_err(|_| fail(seen + 1, offset, "read error".into()))?;
            }
            Err(PcapError::Incomplete(_) | PcapError::UnexpectedEof) => {
                return Err(fail(
                    seen + 1,
                    offset,
                    "truncated block at end of file".into(),
                ))
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(fail(
                    seen + 1,
                    offset,
                    format!("block length over {BUFFER} bytes (damaged length field?)"),
                ))
            }
            // pcap-parser's error holds the rest of the buffer: name only the kind.
            Err(PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind)) => {
                let why = format!("malformed pcapng block ({})", kind.description());
                return Err(fail(seen + 1, offset, why));
            }
            Err(_) => return Err(fail(seen + 1, offset, "unreadable pcapng block".into())),
        }
    }
}
