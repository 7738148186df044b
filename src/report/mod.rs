//! Output: JSON Lines and human text.

pub mod groups;
pub mod json;
pub mod pcap;
pub mod text;
pub mod tmpfile;
