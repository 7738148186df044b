//! The teaching aid behind `kaprobe explain`: annotated probes per stack,
//! a capture's frame with the classifier's reasoning, ladder diagrams (text
//! and SVG), the timing calculator and named synthetic scenarios. Pure: no
//! file, clock or socket; the CLI reads and writes.

pub mod annotate;
pub mod frame;
pub mod ladder;
pub mod probe;
pub mod scenario;
pub mod svg;
pub mod timing;

use crate::analyze::{Analyzer, Collect, Config, Events, SegmentEvent};
use crate::decode::LinkType;

/// Every segment event of a list of Ethernet frames `(time ns, bytes)`, in order.
pub fn events_of<'a>(frames: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<SegmentEvent> {
    let mut an = Analyzer::new(Config {
        events: Events::All,
        ..Config::default()
    });
    let mut all = Collect::default();
    for (i, (time, bytes)) in frames.into_iter().enumerate() {
        an.frame(i as u64 + 1, time, LinkType::Ethernet, bytes, false, &mut all);
    }
    an.finish(&mut all);
    all.segments
}

/// The ladder of a scenario's session (a `timeline`).
pub fn timeline(title: impl Into<String>, frames: &[scenario::Frame]) -> ladder::Ladder {
    let events = events_of(frames.iter().map(|f| (f.time, f.bytes.as_slice())));
    let kept: Vec<ladder::Kept> = events.into_iter().map(|e| (e, 0)).collect();
    ladder::Ladder::from_events(title, &kept, 0)
}
