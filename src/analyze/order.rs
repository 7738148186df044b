//! Where an analyzer's output belongs in the input, so that the output of
//! analyzers holding different flows can be merged into what one analyzer
//! holding them all would have said, in the same order.

/// What happens at one analysed segment, in the order it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Flows a sweep evicted (due after the segment before).
    Swept,
    /// The flow a new connection with the same key replaced.
    Replaced,
    /// A flow created by this segment.
    Started,
    /// The segment's own event.
    Segment,
}

/// A place in the output: at the `seq`th analysed segment, in `phase`.
/// Flows that leave at one place leave in order of their first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Order {
    pub seq: u64,
    pub phase: Phase,
}

impl Order {
    /// Before the first segment.
    pub const START: Order = Order {
        seq: 0,
        phase: Phase::Swept,
    };
    /// End of input: the flows still open.
    pub const END: Order = Order {
        seq: u64::MAX,
        phase: Phase::Swept,
    };
}
