//! Flow keys, per-direction sequence state, and the flow table.

mod direction;
mod index;
mod key;
pub(crate) mod prefetch;
mod table;

pub use direction::Direction;
pub use key::{Endpoint, FlowKey, Side};
pub use table::{FlowTable, Keyed};
