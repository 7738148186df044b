//! Flow keys, per-direction sequence state, and the flow table.

mod direction;
mod key;
mod table;

pub use direction::{Direction, SynInfo};
pub use key::{Endpoint, FlowKey, Side};
pub use table::FlowTable;
