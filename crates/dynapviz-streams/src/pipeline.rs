//! The pipeline runtime's two kinds of connection:
//! - lossless, bounded, batched channels for analysis sinks (counts, readout, recordings): a
//!   full channel makes the producer wait, nothing is lost;
//! - a coalescing slot for display sinks: the producer replaces a frame the display has not
//!   taken yet and counts it as skipped, so a slow window never slows the source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// A lossless bounded channel of batches.
pub fn batched<T>(capacity_batches: usize) -> (SyncSender<Vec<T>>, Receiver<Vec<T>>) {
    sync_channel(capacity_batches.max(1))
}

/// The newest value for a display, with counts of what was published and skipped.
#[derive(Debug)]
pub struct LatestSlot<T> {
    value: Mutex<Option<T>>,
    published: AtomicU64,
    skipped: AtomicU64,
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self { value: Mutex::new(None), published: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }
}

impl<T> LatestSlot<T> {
    /// A shared empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes `value`, replacing (and counting as skipped) one the display has not taken.
    /// Never waits on the display beyond the slot's own short lock.
    pub fn publish(&self, value: T) {
        let mut slot = self.value.lock().unwrap_or_else(|p| p.into_inner());
        if slot.replace(value).is_some() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the newest value, if a new one was published.
    pub fn take(&self) -> Option<T> {
        self.value.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Values published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Values replaced before the display took them.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}
