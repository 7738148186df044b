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

    /// The first block's length, from its first bytes (what is there of it
    /// when the input is not a capture: the parser names what is wrong).
    fn first_block(&mut self) -> io::Result<usize> {
        self.fill_to(4)?;
        let len = match self.ahead.get(..4) {
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => {
                self.fill_to(PCAPNG_PREFIX)?;
                match self.ahead.get(4..12) {
                    Some(b) => {
                        let (len, magic) = ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]);
                        match u32::from_le_bytes(magic) {
                            0x1a2b_3c4d => u32::from_le_bytes(len),
                            _ => u32::from_be_bytes(len),
                        }
                    }
                    None => 0,
                }
            }
            _ => PCAP_HEADER as u32,
        };
        // A bogus length is the parser's to name; only what is there is waited for.
        let len = (len as usize).min(1 << 20);
        self.fill_to(len)?;
        Ok(len.min(self.ahead.len()))
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
}
