//! `kaprobe watch`'s pure part: the live table of flows with keepalive
//! (`board`) and `--expect` checked as flows progress (`alerts`). The capture
//! loop and the terminal are `crate::cli::watch`.

mod alerts;
mod board;

pub use alerts::{Alert, Alerts, Verdict};
pub use board::Board;

/// A recorded capture's flow 1: its report after each of its events (with
/// the event's kind and time), and its report at the end.
#[cfg(test)]
fn progress(
    file: &str,
) -> (
    Vec<(crate::analyze::FlowReport, crate::analyze::Kind, u64)>,
    crate::analyze::FlowReport,
) {
    use crate::analyze::{Analyzer, Collect, Config, Connection, Events, FlowReport, Kind, SegmentEvent, Sink};
    struct Each(Vec<(FlowReport, Kind, u64)>, Collect);
    impl Sink for Each {
        fn segment(&mut self, _ev: &SegmentEvent) {}
        fn flow(&mut self, c: Connection) {
            self.1.flow(c)
        }
        fn progressed(&mut self, ev: &SegmentEvent, c: &Connection) {
            if c.id == 1 {
                self.0.push((FlowReport::of(c), ev.kind, ev.time));
            }
        }
    }
    let mut an = Analyzer::new(Config {
        events: Events::Notable,
        ..Config::default()
    });
    let mut sink = Each(Vec::new(), Collect::default());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(file);
    crate::capture::read_file(&path, |r| {
        if let Some(link) = r.link {
            an.frame(r.frame, r.time, link, r.data, r.snapped(), &mut sink);
        }
    })
    .unwrap();
    an.finish(&mut sink);
    let end = FlowReport::of(&sink.1.flows[0]);
    (sink.0, end)
}
