//! One reader for pcap (micro- and nanosecond, either byte order) and pcapng
//! (any mix of interfaces and link types, per-interface timestamp
//! resolution), on pcap-parser's block parsers. A regular file is mapped into
//! memory and parsed in place: no copy of the packet bytes at all, which at
//! millions of packets a second is a large part of the cost. Anything that
//! cannot be mapped (a pipe, /dev/stdin) is streamed through one large
//! buffer. Either way frames are borrowed, reading costs no allocation per
//! record, and every error knows its byte offset.
//!
//! A mapped file that another process truncates while kaprobe reads it
//! raises SIGBUS, as with any mmap reader (tcpdump and dumpcap only append):
//! `sigbus` turns that into the usual one-line error and exit 2.
//! Pages already parsed are unmapped as the reader moves on, so resident
//! memory does not grow with the file.

use super::{CaptureError, ReadSummary, Record};
use crate::decode::LinkType;
use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header, LegacyPcapBlock};
use pcap_parser::pcapng::Block;
use pcap_parser::pcapng::{parse_block_be, parse_block_le};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::path::Path;

/// Read buffer when streaming: many records per refill; also the largest
/// record accepted either way.
const BUFFER: usize = 4 << 20;

struct Interface {
    code: u32,
    link: Option<LinkType>,
    /// Timestamp units per second.
    units: u64,
    /// Nanoseconds per unit, when a whole number (µs, ms, ns: every common
    /// capture): a multiplication per packet instead of a 128-bit division.
    ns_per_unit: Option<u64>,
    offset_s: i64,
}

impl Interface {
    fn new(code: u32, units: u64, offset_s: i64) -> Interface {
        let units = units.max(1);
        Interface {
            code,
            link: LinkType::from_code(code),
            units,
            ns_per_unit: (NS_PER_S.is_multiple_of(units) && offset_s == 0).then(|| NS_PER_S / units),
            offset_s,
        }
    }

    #[inline]
    fn time(&self, ts: u64) -> u64 {
        match self.ns_per_unit.and_then(|n| ts.checked_mul(n)) {
            Some(ns) => ns,
            None => self.time_slow(ts),
        }
    }

    #[cold]
    fn time_slow(&self, ts: u64) -> u64 {
        let ns = ts as i128 * NS_PER_S as i128 / self.units as i128;
        (ns + self.offset_s as i128 * NS_PER_S as i128).clamp(0, u64::MAX as i128) as u64
    }
}

const NS_PER_S: u64 = 1_000_000_000;

pub fn read(path: &Path, name: &str, mut each: impl FnMut(&Record)) -> Result<ReadSummary, CaptureError> {
    let open = |why: String| CaptureError::Open { path: name.into(), why };
    let file = std::fs::File::open(path).map_err(|e| open(super::io_reason(&e)))?;
    let mut st = Blocks {
        name,
        ifaces: Vec::new(),
        sum: ReadSummary::default(),
        offset: 0,
        length: LengthField::default(),
    };
    // SAFETY: the map is only read, and only while `file` is open; the one
    // hazard, another process truncating the file meanwhile, is noted above.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok();
    match map.as_ref().and_then(|m| Some((m, Format::of(m)?))) {
        Some((map, format)) => {
            let _sigbus = super::sigbus::Guard::new(name);
            // Read ahead aggressively: the file is parsed once, front to back.
            let _ = map.advise(memmap2::Advice::Sequential);
            // Pages the kernel reads in for this map come in 2 MiB folios,
            // mapped a whole folio per fault: a 4 KiB page per fault, set up
            // and torn down, was a fifth to a third of verify's time on a large
            // capture. (A file already cached in small pages stays so.)
            let _ = map.advise(memmap2::Advice::HugePage);
            read_mapped(map, format, &mut st, &mut each)?;
        }
        None => read_streamed(file, &mut st, &mut each)?,
    }
    Ok(st.sum)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcap { big_endian: bool },
    PcapNg,
}

impl Format {
    /// The formats the mapped reader takes; anything else (including damage)
    /// goes to the streaming reader, whose errors name it.
    fn of(data: &[u8]) -> Option<Format> {
        match data.get(..4)? {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(Format::Pcap { big_endian: false }),
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(Format::Pcap { big_endian: true }),
            [0x0a, 0x0d, 0x0d, 0x0a] => Some(Format::PcapNg),
            _ => None,
        }
    }
}

/// Where a record's length field sits in its header, and the byte order:
/// for naming a damaged length in an error.
#[derive(Clone, Copy, Default)]
struct LengthField {
    at: u64,
    big_endian: bool,
}

/// Reading state across blocks: the interfaces described so far.
struct Blocks<'n> {
    name: &'n str,
    ifaces: Vec<Interface>,
    sum: ReadSummary,
    /// Byte offset of the block being read.
    offset: u64,
    length: LengthField,
}

impl Blocks<'_> {
    #[cold]
    fn fail(&self, why: String) -> CaptureError {
        CaptureError::Read {
            path: self.name.into(),
            record: self.sum.records + 1,
            offset: Some(self.offset),
            why,
        }
    }

    /// One block: interfaces are noted, frames handed to `each`.
    fn block(&mut self, block: &PcapBlockOwned, each: &mut impl FnMut(&Record)) -> Result<(), CaptureError> {
        let frame = match block {
            PcapBlockOwned::LegacyHeader(h) => {
                let units = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                self.ifaces = vec![Interface::new(h.network.0 as u32, units, 0)];
                self.length = LengthField {
                    at: 8,
                    big_endian: h.is_bigendian(),
                };
                None
            }
            PcapBlockOwned::Legacy(b) => {
                self.legacy(b, each);
                None
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.ifaces.clear();
                self.length = LengthField {
                    at: 4,
                    big_endian: shb.big_endian(),
                };
                None
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.ifaces.push(Interface::new(
                    idb.linktype.0 as u32,
                    idb.ts_resolution().unwrap_or(1_000_000),
                    idb.ts_offset(),
                ));
                None
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                return self.enhanced(epb.if_id, ts, epb.packet_data(), epb.orig_len(), each);
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let i = self
                    .ifaces
                    .first()
                    .ok_or_else(|| self.fail("packet before any interface description".into()))?;
                Some((i, 0, spb.packet_data(), spb.orig_len()))
            }
            _ => None,
        };
        if let Some((i, time, data, wire_len)) = frame {
            Self::frame(i, &mut self.sum, self.offset, time, data, wire_len, each);
        }
        Ok(())
    }

    /// A pcapng Enhanced Packet Block's packet (from pcap-parser's block, or
    /// read at fixed offsets by `Epb`).
    #[inline]
    fn enhanced(
        &mut self,
        if_id: u32,
        ts: u64,
        data: &[u8],
        wire_len: u32,
        each: &mut impl FnMut(&Record),
    ) -> Result<(), CaptureError> {
        let Some(i) = self.ifaces.get(if_id as usize) else {
            return Err(self.fail(format!(
                "packet names interface {if_id} but {} are described",
                self.ifaces.len()
            )));
        };
        Self::frame(i, &mut self.sum, self.offset, i.time(ts), data, wire_len, each);
        Ok(())
    }

    /// A classic pcap record (straight from the mapped reader, without the
    /// general block enum, on the path most captures take).
    #[inline]
    fn legacy(&mut self, b: &LegacyPcapBlock, each: &mut impl FnMut(&Record)) {
        let i = &self.ifaces[0];
        let ts = b.ts_sec as u64 * i.units + b.ts_usec as u64;
        Self::frame(i, &mut self.sum, self.offset, i.time(ts), b.data, b.origlen, each);
    }

    #[inline]
    fn frame(
        i: &Interface,
        sum: &mut ReadSummary,
        offset: u64,
        time: u64,
        data: &[u8],
        wire_len: u32,
        each: &mut impl FnMut(&Record),
    ) {
        sum.records += 1;
        sum.unknown_link += i.link.is_none() as u64;
        each(&Record {
            frame: sum.records,
            time,
            link: i.link,
            link_code: i.code,
            data,
            wire_len,
            offset,
        });
    }

    /// The error for a block that did not parse. `claimed` reads the 32-bit
    /// length field at a byte offset (the file's byte order applied).
    #[cold]
    #[inline(never)]
    fn error(&self, e: Failure, claimed: impl Fn(u64, bool) -> Option<u32>) -> CaptureError {
        let over = || {
            let n = claimed(self.offset + self.length.at, self.length.big_endian);
            let n = n.map_or(String::new(), |n| format!(" {n}"));
            self.fail(format!(
                "record length{n} is over {} MiB (damaged length field?)",
                BUFFER >> 20
            ))
        };
        match e {
            Failure::TooLong => over(),
            Failure::Cut => match claimed(self.offset + self.length.at, self.length.big_endian) {
                Some(n) if n as usize > BUFFER => over(),
                _ => self.fail("truncated record at end of file".into()),
            },
            Failure::Malformed(kind) => self.fail(format!("malformed block ({kind})")),
            Failure::Other => self.fail("unreadable record".into()),
        }
    }
}

/// Why a block did not parse, without pcap-parser's borrow of the input.
enum Failure {
    TooLong,
    Cut,
    Malformed(String),
    Other,
}

impl Failure {
    fn of(e: &PcapError<&[u8]>) -> Failure {
        match e {
            PcapError::BufferTooSmall => Failure::TooLong,
            PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => Failure::Cut,
            // pcap-parser's error holds the rest of the input: name only the kind.
            PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                Failure::Malformed(kind.description().to_string())
            }
            _ => Failure::Other,
        }
    }
}

/// What a file header that did not parse is called (both readers).
fn header_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::Incomplete(_) | PcapError::Eof | PcapError::UnexpectedEof => "truncated file header".into(),
        PcapError::ReadError => "read error".into(),
        _ => "not a pcap or pcapng file (unknown file format)".into(),
    }
}

/// Keeps the mapped file ready ahead of the parser and lets go of it behind:
/// bytes are loaded into the CPU cache a few KiB ahead (the hardware
/// prefetcher stops at page boundaries, and a record header that comes from
/// memory stalls everything), and pages far behind are unmapped, so the
/// process's memory follows flows, not the size of the file (the pages stay
/// in the page cache; nothing is read twice).
struct Ahead<'m> {
    map: &'m memmap2::Mmap,
    /// Bytes before this (a multiple of the line size) have been prefetched.
    cached: usize,
    released: usize,
}

impl<'m> Ahead<'m> {
    const CACHE: usize = 4 << 10;
    const LINE: usize = 64;
    const RELEASE: usize = 4 << 20;

    fn new(map: &'m memmap2::Mmap) -> Self {
        Ahead {
            map,
            cached: 0,
            released: 0,
        }
    }

    #[inline]
    fn prefetch(&mut self, pos: usize) {
        if pos >= self.released + 2 * Self::RELEASE {
            self.release(pos);
        }
        let base = self.map.as_ptr();
        while self.cached < pos + Self::CACHE {
            // Past the end only hints at addresses nobody reads: prefetches never fault.
            crate::flow::prefetch::once(base.wrapping_add(self.cached));
            self.cached += Self::LINE;
        }
    }

    /// Unmaps what lies more than `RELEASE` behind `pos`.
    #[cold]
    fn release(&mut self, pos: usize) {
        let end = pos - Self::RELEASE;
        // SAFETY: MADV_DONTNEED on a read-only file mapping only unmaps:
        // a later read of those bytes faults them back in from the file,
        // unchanged. No record before `end` is still being read.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, self.released, end - self.released)
        };
        self.released = end;
    }
}

/// A well-formed Enhanced Packet Block of a little-endian section, read at
/// its fixed offsets. pcap-parser's block parser also reads each block's
/// options into a list, a fifth of the time of reading a pcapng capture, and
/// packets' options are never used. Anything else (another block, a length
/// that does not add up) is left to pcap-parser, whose errors name it.
struct Epb<'a> {
    len: usize,
    if_id: u32,
    ts: u64,
    data: &'a [u8],
    orig_len: u32,
}

impl<'a> Epb<'a> {
    const TYPE: u32 = 6;
    /// Type, length, interface, timestamp (2 words), captured and original
    /// lengths; the trailing copy of the length.
    const FIXED: usize = 28 + 4;

    #[inline]
    fn le(b: &'a [u8]) -> Option<Epb<'a>> {
        let word = |at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
        if word(0)? != Self::TYPE {
            return None;
        }
        let len = word(4)? as usize;
        let caplen = word(20)? as usize;
        if len < Self::FIXED
            || !len.is_multiple_of(4)
            || len > BUFFER
            || word(len - 4)? as usize != len
            || caplen > len - Self::FIXED
        {
            return None;
        }
        Some(Epb {
            len,
            if_id: word(8)?,
            ts: (word(12)? as u64) << 32 | word(16)? as u64,
            data: &b[28..28 + caplen],
            orig_len: word(24)?,
        })
    }
}

/// A slice parser's error (input running out means the file ended).
fn unnom(e: pcap_parser::nom::Err<PcapError<&[u8]>>) -> PcapError<&[u8]> {
    match e {
        pcap_parser::nom::Err::Incomplete(_) => PcapError::UnexpectedEof,
        pcap_parser::nom::Err::Error(e) | pcap_parser::nom::Err::Failure(e) => e,
    }
}

/// Parses a whole mapped file in place.
fn read_mapped(
    map: &memmap2::Mmap,
    format: Format,
    st: &mut Blocks,
    each: &mut impl FnMut(&Record),
) -> Result<(), CaptureError> {
    let data: &[u8] = map;
    let mut ahead = Ahead::new(map);
    let claimed = |at: u64, big_endian: bool| be_or_le(data, at as usize, big_endian);
    let mut pos = 0;
    match format {
        Format::Pcap { big_endian } => {
            let (rest, h) = parse_pcap_header(data).map_err(|_| CaptureError::Open {
                path: st.name.into(),
                why: "truncated file header".into(),
            })?;
            st.block(&PcapBlockOwned::LegacyHeader(h), each)?;
            pos = data.len() - rest.len();
            let parse = if big_endian {
                parse_pcap_frame_be
            } else {
                parse_pcap_frame
            };
            while pos < data.len() {
                st.offset = pos as u64;
                ahead.prefetch(pos);
                let (rest, b) = parse(&data[pos..]).map_err(|e| st.error(Failure::of(&unnom(e)), claimed))?;
                // The streaming reader's limit holds here too: a larger record
                // is a damaged length field, not a packet.
                if b.caplen as usize > BUFFER {
                    return Err(st.error(Failure::TooLong, claimed));
                }
                st.legacy(&b, each);
                pos = data.len() - rest.len();
            }
        }
        Format::PcapNg => {
            let mut big_endian = false;
            while pos < data.len() {
                st.offset = pos as u64;
                ahead.prefetch(pos);
                if let Some(b) = Epb::le(&data[pos..]).filter(|_| !big_endian) {
                    st.enhanced(b.if_id, b.ts, b.data, b.orig_len, each)?;
                    pos += b.len;
                    continue;
                }
                let parse = if big_endian { parse_block_be } else { parse_block_le };
                let (rest, b) = match parse(&data[pos..]) {
                    Ok(parsed) => parsed,
                    // The first section header is the file header.
                    Err(e) if pos == 0 => {
                        return Err(CaptureError::Open {
                            path: st.name.into(),
                            why: header_error(&unnom(e)),
                        })
                    }
                    Err(e) => return Err(st.error(Failure::of(&unnom(e)), claimed)),
                };
                if data.len() - rest.len() - pos > BUFFER {
                    return Err(st.error(Failure::TooLong, claimed));
                }
                if let Block::SectionHeader(shb) = &b {
                    big_endian = shb.big_endian();
                }
                st.block(&PcapBlockOwned::NG(b), each)?;
                pos = data.len() - rest.len();
            }
        }
    }
    Ok(())
}

/// Reads what cannot be mapped (a pipe) through one large buffer.
fn read_streamed(file: std::fs::File, st: &mut Blocks, each: &mut impl FnMut(&Record)) -> Result<(), CaptureError> {
    let file = super::first_block::FirstBlock::new(file);
    let mut reader = create_reader(BUFFER, file).map_err(|e| CaptureError::Open {
        path: st.name.into(),
        why: header_error(&e),
    })?;
    loop {
        let failure = match reader.next() {
            Ok((len, block)) => {
                st.block(&block, each)?;
                st.offset += len as u64;
                reader.consume_noshift(len);
                continue;
            }
            Err(PcapError::Eof) => return Ok(()),
            // More is needed: read on (a slow writer may take many reads per
            // record); at the end of input pcap-parser says UnexpectedEof.
            Err(PcapError::Incomplete(_)) => None,
            Err(e) => Some(Failure::of(&e)),
        };
        match failure {
            None => reader.refill().map_err(|_| st.fail("read error".into()))?,
            // The failed block starts the reader's buffer: its length field is there.
            Some(f) => {
                let buffered = reader.data();
                let claimed = |at: u64, big_endian: bool| be_or_le(buffered, (at - st.offset) as usize, big_endian);
                return Err(st.error(f, claimed));
            }
        }
    }
}

/// The 32-bit number at `at` in `data`, if there.
fn be_or_le(data: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Enhanced Packet Block: `options` are (code, value) pairs, each padded
    /// to 4 bytes, ended by opt_endofopt.
    fn epb(if_id: u32, ts: u64, data: &[u8], orig_len: u32, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let pad = |n: usize| (4 - n % 4) % 4;
        let mut body = Vec::new();
        for v in [if_id, (ts >> 32) as u32, ts as u32, data.len() as u32, orig_len] {
            body.extend(v.to_le_bytes());
        }
        body.extend(data);
        body.extend(vec![0; pad(data.len())]);
        if !options.is_empty() {
            for (code, v) in options {
                body.extend(code.to_le_bytes());
                body.extend((v.len() as u16).to_le_bytes());
                body.extend(v);
                body.extend(vec![0; pad(v.len())]);
            }
            body.extend([0; 4]);
        }
        let len = (body.len() + 12) as u32;
        [&6u32.to_le_bytes()[..], &len.to_le_bytes(), &body, &len.to_le_bytes()].concat()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Wherever the fixed-offset reading answers, on built blocks and on
        /// blocks with header bits flipped or cut short, pcap-parser reads the
        /// same block.
        #[test]
        fn epb_agrees_with_pcap_parser(
            if_id in 0u32..3,
            ts in any::<u64>(),
            data in prop::collection::vec(any::<u8>(), 0..40),
            orig_extra in 0u32..2000,
            options in prop::collection::vec((1u16..4, prop::collection::vec(any::<u8>(), 0..12)), 0..3),
            flips in prop::collection::vec((0usize..32, 0u8..8), 0..3),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut b = epb(if_id, ts, &data, data.len() as u32 + orig_extra, &options);
            for (at, bit) in flips {
                b[at] ^= 1 << bit;
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            }
            if let Some(fast) = Epb::le(&b) {
                let (rest, block) = parse_block_le(&b).expect("pcap-parser reads what the fast path reads");
                let Block::EnhancedPacket(e) = block else {
                    panic!("not an EPB to pcap-parser");
                };
                prop_assert_eq!(fast.len, b.len() - rest.len());
                prop_assert_eq!(fast.if_id, e.if_id);
                prop_assert_eq!(fast.ts, (e.ts_high as u64) << 32 | e.ts_low as u64);
                prop_assert_eq!(fast.data, e.packet_data());
                prop_assert_eq!(fast.orig_len, e.orig_len());
            }
        }
    }

    #[test]
    fn timestamps_become_nanoseconds_in_every_resolution() {
        let at = |units: u64, offset_s: i64, ts: u64| Interface::new(1, units, offset_s).time(ts);
        assert_eq!(at(1_000_000, 0, 1_700_000_000_123_456), 1_700_000_000_123_456_000);
        assert_eq!(at(1_000_000_000, 0, 42), 42);
        assert_eq!(at(1_000, 0, 5), 5_000_000);
        // pcapng's binary resolutions (2^-10 s) do not divide a second in ns.
        assert_eq!(at(1024, 0, 1536), 1_500_000_000);
        assert_eq!(at(1_000_000, 10, 1), 10_000_001_000);
        assert_eq!(at(1_000_000, -10, 1), 0, "before the epoch: clamped");
        assert_eq!(
            at(1_000_000, 0, u64::MAX / 10),
            u64::MAX,
            "past 2554: clamped, not wrapped"
        );
    }

    #[test]
    fn a_built_epb_takes_the_fast_path() {
        let b = epb(1, 5 << 32 | 7, &[1, 2, 3], 60, &[(1, b"note".to_vec())]);
        let e = Epb::le(&b).expect("fast path");
        assert_eq!(
            (e.len, e.if_id, e.ts, e.data, e.orig_len),
            (b.len(), 1, 5 << 32 | 7, &[1u8, 2, 3][..], 60)
        );
        assert!(Epb::le(&b[..b.len() - 1]).is_none(), "cut block");
    }
}
