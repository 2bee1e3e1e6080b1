//! The processing nodes of the original's samna graph (DESIGN.md §2), each a small typed unit,
//! plus the filters users ask for. Nodes work on chunks in place or into caller-owned buffers,
//! so a chain allocates nothing per event.

pub mod filter;
pub mod frame;
pub mod power;
pub mod readout;

/// An invalid node setting.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{node}: {message}")]
pub struct NodeError {
    /// The node.
    pub node: &'static str,
    /// What is wrong, and what is allowed.
    pub message: String,
}

pub(crate) fn invalid(node: &'static str, message: impl Into<String>) -> NodeError {
    NodeError { node, message: message.into() }
}
