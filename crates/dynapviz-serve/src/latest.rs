//! The newest published picture, which viewers wait on: one slot, replaced by each publish.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// An encoded picture and its media type.
#[derive(Debug)]
pub(crate) struct Picture {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: &'static str,
}

/// What was published last.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    /// Pictures published so far: the newest one's number (0: none yet).
    pub(crate) number: u64,
    pub(crate) picture: Option<Arc<Picture>>,
    /// The caller's status, a JSON value.
    pub(crate) status: Arc<str>,
}

/// The slot and its wake-up.
pub(crate) struct Latest {
    state: Mutex<Published>,
    changed: Condvar,
}

impl Latest {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new(Published { number: 0, picture: None, status: Arc::from("null") }), changed: Condvar::new() }
    }

    /// The lock; a panic while it was held (none of this crate's code panics under it) leaves
    /// a whole value behind, so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the picture and wakes every waiting viewer.
    pub(crate) fn publish(&self, picture: Picture, status: String) {
        let mut s = self.lock();
        s.number += 1;
        s.picture = Some(Arc::new(picture));
        s.status = Arc::from(status);
        drop(s);
        self.changed.notify_all();
    }

    /// Replaces the status only.
    pub(crate) fn set_status(&self, status: String) {
        self.lock().status = Arc::from(status);
    }

    /// A copy of what was published last.
    pub(crate) fn snapshot(&self) -> Published {
        self.lock().clone()
    }

    /// Waits up to `timeout` for a picture newer than number `after`, or until `stop` says so.
    /// Returns the newest when there is one, else `None`.
    pub(crate) fn newer(&self, after: u64, timeout: Duration, stop: impl Fn() -> bool) -> Option<(u64, Arc<Picture>)> {
        let s = self.lock();
        let (s, _) = self
            .changed
            .wait_timeout_while(s, timeout, |p| (p.number <= after || p.picture.is_none()) && !stop())
            .unwrap_or_else(|e| e.into_inner());
        if s.number > after { s.picture.clone().map(|p| (s.number, p)) } else { None }
    }

    /// Wakes every waiting viewer (at shutdown).
    pub(crate) fn wake_all(&self) {
        self.changed.notify_all();
    }
}
