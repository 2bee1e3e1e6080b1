//! The live dashboard over HTTP. A session that runs on one machine (next to a devkit, on a
//! lab server without a display) is watched from any browser on another, with no install
//! there: the page polls for the newest picture of the dashboard and can pause and change the
//! playback speed, as the window's keys do.
//!
//! The crate knows nothing of the dashboard: its caller renders pictures and
//! [`LiveServer::publish`]es them with a status in JSON, and, when a viewer asks to save one as
//! a vector document ([`LiveServer::vector_wanted`]), [`LiveServer::publish_vector`]es that. Publishing replaces the previous
//! picture and never waits for a viewer, so a slow or stalled browser costs the session
//! nothing; each viewer simply gets fewer pictures. Every viewer holds one connection and one
//! thread, up to [`ServeConfig::max_connections`]; requests are read with bounded sizes and
//! timeouts, and a bad one gets a status and a reason, never a panic.

mod http;
mod latest;
mod server;

pub use server::{Command, LiveServer, OnCommand, ServeConfig, ServeError, ServerStats};
