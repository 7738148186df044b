//! A stream whose first read returns the capture's first block (the pcap
//! file header, or the pcapng section header) and nothing more.
//!
//! pcap-parser's `create_reader` reads once, then reads again before it
//! returns: when a pipe's first chunk held the header and a record (`cat
//! f.pcap | kaprobe watch -r -`), that record waited for the next chunk,
//! however long the pipe was quiet. Served the header alone first, the
//! second read gets what is already waiting.

use std::io::{self, Read};

pub struct FirstBlock<R> {
    inner: R,
    /// Bytes read before they were asked for: the first block, then what followed it.
    ahead: Vec<u8>,
    /// Where in `ahead` the next read starts.
    at: usize,
    started: bool,
}

/// The pcap file header's length.
const PCAP_HEADER: usize = 24;
/// A pcapng block's type, length and byte-order magic.
const PCAPNG_PREFIX: usize = 12;
/// A pcapng section header's length: without options, and the most waited for.
const SECTION_HEADER_MIN: usize = 28;
const SECTION_HEADER_MAX: usize = 1 << 16;

impl<R: Read> FirstBlock<R> {
    pub fn new(inner: R) -> Self {
        FirstBlock {
            inner,
            ahead: Vec::new(),
            at: 0,
            started: false,
        }
    }

    /// Reads until `ahead` holds `n` bytes or the input ends.
    fn fill_to(&mut self, n: usize) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        while self.ahead.len() < n {
            match self.inner.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => self.ahead.extend_from_slice(&buf[..got]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The first block's length, from its first bytes. Only a known
    /// magic with a sane length is waited for; anything else is passed on
    /// as it came, for the parser to name what is wrong at once.
    fn first_block(&mut self) -> io::Result<usize> {
        self.fill_to(4)?;
        let len = match self.ahead.get(..4) {
            Some(
                [0xd4, 0xc3, 0xb2, 0xa1]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0xa1, 0xb2, 0x3c, 0x4d],
            ) => Some(PCAP_HEADER),
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => {
                self.fill_to(PCAPNG_PREFIX)?;
                self.ahead.get(4..12).and_then(|b| {
                    let (len, magic) = ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]);
                    let len = match magic {
                        [0x4d, 0x3c, 0x2b, 0x1a] => u32::from_le_bytes(len),
                        [0x1a, 0x2b, 0x3c, 0x4d] => u32::from_be_bytes(len),
                        _ => return None,
                    } as usize;
                    (SECTION_HEADER_MIN..=SECTION_HEADER_MAX)
                        .contains(&len)
                        .then_some(len)
                        .filter(|l| l % 4 == 0)
                })
            }
            _ => None,
        };
        match len {
            Some(len) => {
                self.fill_to(len)?;
                Ok(len.min(self.ahead.len()))
            }
            None => Ok(self.ahead.len()),
        }
    }
}

impl<R: Read> Read for FirstBlock<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            // Only the first block, however much more came with it.
            let n = self.first_block()?.min(out.len());
            out[..n].copy_from_slice(&self.ahead[..n]);
            self.at = n;
            return Ok(n);
        }
        if self.at < self.ahead.len() {
            let n = (self.ahead.len() - self.at).min(out.len());
            out[..n].copy_from_slice(&self.ahead[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads in the calls the parser makes, returning each call's bytes.
    fn reads(data: &[u8]) -> Vec<Vec<u8>> {
        let mut r = FirstBlock::new(data);
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0u8; 1 << 16];
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.push(buf[..n].to_vec());
        }
    }

    #[test]
    fn the_first_read_is_the_header_alone_and_nothing_is_lost() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1];
        pcap.extend([7u8; 20]);
        pcap.extend([1u8; 50]);
        let r = reads(&pcap);
        assert_eq!(r[0].len(), PCAP_HEADER);
        assert_eq!(r.concat(), pcap);
        // pcapng, either byte order: the section header's own length.
        for le in [true, false] {
            let word = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a];
            ng.extend(word(28));
            ng.extend(word(0x1a2b_3c4d));
            ng.extend([0u8; 16]);
            ng.extend([9u8; 40]);
            let r = reads(&ng);
            assert_eq!(r[0].len(), 28, "le {le}");
            assert_eq!(r.concat(), ng);
        }
        // Short or foreign input: passed on as it is.
        for junk in [&b"ab"[..], b"not a capture at all, longer than a header"] {
            assert_eq!(reads(junk).concat(), junk);
        }
        assert!(reads(b"").is_empty());
    }

    /// A pipe that gives `chunks` one read each, then fails the test if
    /// read again (a read that would wait for more).
    struct Pipe(Vec<Vec<u8>>);

    impl Read for Pipe {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            assert!(!self.0.is_empty(), "read past what came: this would wait");
            let c = self.0.remove(0);
            out[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    #[test]
    fn a_header_coming_in_pieces_is_waited_for_and_junk_is_not() {
        let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1];
        header.extend([7u8; 20]);
        let chunks: Vec<Vec<u8>> = header.chunks(5).map(<[u8]>::to_vec).collect();
        let mut r = FirstBlock::new(Pipe(chunks));
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).unwrap(), PCAP_HEADER);
        assert_eq!(&buf[..PCAP_HEADER], &header[..]);
        // Junk, or a pcapng header with a bad byte-order magic or length,
        // on a pipe that stays open: what came is given at once.
        let bad_order = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4];
        let bad_len = vec![0x0a, 0x0d, 0x0d, 0x0a, 0xff, 0xff, 0xff, 0x7f, 0x4d, 0x3c, 0x2b, 0x1a];
        for junk in [b"not a capture".to_vec(), bad_order, bad_len] {
            let mut r = FirstBlock::new(Pipe(vec![junk.clone()]));
            let n = r.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &junk[..]);
        }
    }
}
