//! The reader of kernel-side decisions (the EVENTS ring buffer).
//!
//! Blocking by design: the proxy runs it on a thread of its own, or wraps its file
//! descriptor (`AsFd`) in `tokio::io::unix::AsyncFd` and calls [`EventReader::try_next`]
//! when it is readable.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use tracing::warn;

use crate::Error;
use crate::maps as raw;
use crate::types::KernelEvent;

pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader").finish_non_exhaustive()
    }
}

impl EventReader {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// The next event already in the buffer, without waiting.
    pub fn try_next(&mut self) -> Option<KernelEvent> {
        while let Some(item) = self.ring.next() {
            let parsed = raw::Event::from_bytes(&item).and_then(KernelEvent::from_raw);
            match parsed {
                Some(event) => return Some(event),
                None => warn!(
                    len = item.len(),
                    "skipping a kernel event this version cannot read"
                ),
            }
        }
        None
    }

    /// The next event, waiting up to `timeout` for one.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<KernelEvent>, Error> {
        if let Some(event) = self.try_next() {
            return Ok(Some(event));
        }
        let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(&self.ring, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(self.try_next()),
            Err(e) => Err(Error::Events(e.into())),
        }
    }
}

impl AsFd for EventReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}
