//! Output: JSON Lines and human text.

pub mod json;
pub mod pcap;
pub mod text;
pub mod tmpfile;
