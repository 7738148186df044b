//! One streaming reader for pcap (micro- and nanosecond, either byte order)
//! and pcapng (any mix of interfaces and link types, per-interface timestamp
//! resolution), on pcap-parser: frames are borrowed from one large buffer, so
//! reading costs no allocation per record, and every error knows its byte offset.

use super::{CaptureError, ReadSummary, Record};
use crate::decode::LinkType;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::path::Path;

/// Read buffer: many records per refill; also the largest record accepted.
const BUFFER: usize = 4 << 20;

struct Interface {
    code: u32,
    link: Option<LinkType>,
    /// Timestamp units per second.
    units: u64,
    offset_s: i64,
}

impl Interface {
    fn new(code: u32, units: u64, offset_s: i64) -> Interface {
        Interface {
            code,
            link: LinkType::from_code(code),
            units: units.max(1),
            offset_s,
        }
    }

    fn time(&self, ts: u64) -> u64 {
        let ns = if self.units == 1_000_000_000 {
            ts as i128
        } else {
            ts as i128 * 1_000_000_000 / self.units as i128
        };
        (ns + self.offset_s as i128 * 1_000_000_000).clamp(0, u64::MAX as i128) as u64
    }
}

pub fn read(path: &Path, name: &str, mut each: impl FnMut(&Record)) -> Result<ReadSummary, CaptureError> {
    let open = |why: String| CaptureError::Open { path: name.into(), why };
    let file = std::fs::File::open(path).map_err(|e| open(super::io_reason(&e)))?;
    let mut reader = create_reader(BUFFER, file).map_err(|e| {
        open(match e {
            PcapError::Incomplete(_) | PcapError::Eof | PcapError::UnexpectedEof => "truncated file header".into(),
            PcapError::ReadError => "read error".into(),
            _ => "not a pcap or pcapng file (unknown file format)".into(),
        })
    })?;
    // Classic pcap: one interface from the file header. pcapng: one per IDB in this section.
    let mut ifaces: Vec<Interface> = Vec::new();
    let (mut records, mut sum, mut offset) = (0u64, ReadSummary::default(), 0u64);
    let fail = |record: u64, offset: u64, why: String| CaptureError::Read {
        path: name.into(),
        record,
        offset: Some(offset),
        why,
    };
    // A refill that brought nothing new means the last record is cut short.
    let mut starved = false;
    // Where a record's length field sits in its header, and the byte order.
    let (mut length_at, mut big_endian) = (8u64, false);
    loop {
        match reader.next() {
            Ok((len, block)) => {
                let frame = match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let units = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                        ifaces = vec![Interface::new(h.network.0 as u32, units, 0)];
                        (length_at, big_endian) = (8, h.is_bigendian());
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let i = &ifaces[0];
                        let ts = b.ts_sec as u64 * i.units + b.ts_usec as u64;
                        Some((i, i.time(ts), b.data, b.origlen))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        ifaces.clear();
                        (length_at, big_endian) = (4, shb.big_endian());
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Interface::new(
                            idb.linktype.0 as u32,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        ));
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let i = ifaces.get(epb.if_id as usize).ok_or_else(|| {
                            fail(
                                records + 1,
                                offset,
                                format!(
                                    "packet names interface {} but {} are described",
                                    epb.if_id,
                                    ifaces.len()
                                ),
                            )
                        })?;
                        let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        Some((i, i.time(ts), epb.packet_data(), epb.orig_len()))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let i = ifaces.first().ok_or_else(|| {
                            fail(records + 1, offset, "packet before any interface description".into())
                        })?;
                        Some((i, 0, spb.packet_data(), spb.orig_len()))
                    }
                    _ => None,
                };
                if let Some((i, time, data, wire_len)) = frame {
                    records += 1;
                    sum.records = records;
                    sum.unknown_link += i.link.is_none() as u64;
                    each(&Record {
                        frame: records,
                        time,
                        link: i.link,
                        link_code: i.code,
                        data,
                        wire_len,
                    });
                }
                offset += len as u64;
                reader.consume_noshift(len);
                starved = false;
            }
            Err(PcapError::Eof) => return Ok(sum),
            Err(PcapError::Incomplete(_)) if !starved => {
                starved = true;
                reader
                    .refill()
                    .map_err(|_| fail(records + 1, offset, "read error".into()))?;
            }
            Err(PcapError::Incomplete(_) | PcapError::UnexpectedEof) => {
                return Err(fail(records + 1, offset, "truncated record at end of file".into()));
            }
            Err(PcapError::BufferTooSmall) => {
                let claimed =
                    length_field(path, offset + length_at, big_endian).map_or(String::new(), |n| format!(" {n}"));
                return Err(fail(
                    records + 1,
                    offset,
                    format!(
                        "record length{claimed} is over {} MiB (damaged length field?)",
                        BUFFER >> 20
                    ),
                ));
            }
            // pcap-parser's error holds the rest of the buffer: name only the kind.
            Err(PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind)) => {
                return Err(fail(
                    records + 1,
                    offset,
                    format!("malformed block ({})", kind.description()),
                ));
            }
            Err(_) => return Err(fail(records + 1, offset, "unreadable record".into())),
        }
    }
}

/// The 32-bit length field at `at`, for naming it in an error.
fn length_field(path: &Path, at: u64, big_endian: bool) -> Option<u32> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut b = [0u8; 4];
    f.seek(SeekFrom::Start(at)).ok()?;
    f.read_exact(&mut b).ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}
