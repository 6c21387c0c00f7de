//! The node's bounded flow ring, like Hubble's observer ring buffer: a fixed number of
//! the newest flows for `observe --last N`, plus a broadcast for `--follow`.
//!
//! Trade-off: one short mutex around a `VecDeque` rather than a lock-free ring. A push
//! is O(1) (pop the oldest, append) and the lock is held only for that and for
//! handing the entry to the broadcast channel; readers copy `Arc`s out and serialise
//! outside the lock. Flows are recorded per connection or request, not per packet,
//! so contention stays low.
//!
//! Flows are rendered lazily: the hot paths (a DNS query, an HTTP request) push what
//! they know, already owned, with the function that turns it into Hubble's record
//! ([`FlowRing::push_lazy`]); the record (labels, strings, UUID) is built the first
//! time somebody reads it, once, and most flows of a busy node are overwritten
//! unread. Building two records per request eagerly was about a fifth of the L7
//! engines' CPU per request.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::record::Flow;

/// What turns a pushed event into its flow, run at most once.
pub type Render = Box<dyn FnOnce() -> Flow + Send>;

/// One recorded flow and its position in the ring's history.
pub struct RecordedFlow {
    /// Increases by one per push, from 1; followers use it to skip what a snapshot
    /// already gave them.
    pub seq: u64,
    flow: LazyLock<Arc<Flow>, Box<dyn FnOnce() -> Arc<Flow> + Send>>,
}

impl RecordedFlow {
    fn ready(seq: u64, flow: Arc<Flow>) -> Self {
        Self {
            seq,
            flow: LazyLock::new(Box::new(move || flow)),
        }
    }

    fn lazy(seq: u64, render: Render) -> Self {
        Self {
            seq,
            flow: LazyLock::new(Box::new(move || Arc::new(with_uuid(render())))),
        }
    }

    /// The flow, rendered now if nobody read it before.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }
}

impl fmt::Debug for RecordedFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedFlow")
            .field("seq", &self.seq)
            .field("flow", self.flow())
            .finish()
    }
}

/// A flow without a UUID gets a fresh one.
fn with_uuid(mut flow: Flow) -> Flow {
    if flow.uuid.is_empty() {
        flow.uuid = uuid::Uuid::new_v4().to_string();
    }
    flow
}

/// A follower's view: the snapshot taken atomically with the subscription, and the
/// stream of what is pushed afterwards.
pub struct Subscription {
    pub snapshot: Vec<Arc<RecordedFlow>>,
    pub receiver: broadcast::Receiver<Arc<RecordedFlow>>,
}

#[derive(Debug, Default)]
struct Inner {
    flows: VecDeque<Arc<RecordedFlow>>,
    next_seq: u64,
}

/// Bounded: when full, the oldest flow is dropped (newest wins).
#[derive(Debug)]
pub struct FlowRing {
    inner: Mutex<Inner>,
    capacity: usize,
    sender: broadcast::Sender<Arc<RecordedFlow>>,
    lost_events: AtomicU64,
}

impl FlowRing {
    /// Hubble's default ring size is 4095; sluice keeps 4096.
    pub const DEFAULT_CAPACITY: usize = 4096;
    /// How far a follower may fall behind before it loses flows.
    pub const FOLLOW_BUFFER: usize = 1024;

    pub fn new(capacity: usize) -> Self {
        Self::with_follow_buffer(capacity, Self::FOLLOW_BUFFER)
    }

    pub fn with_follow_buffer(capacity: usize, follow_buffer: usize) -> Self {
        let capacity = capacity.max(1);
        let (sender, _) = broadcast::channel(follow_buffer.max(1));
        Self {
            inner: Mutex::new(Inner {
                flows: VecDeque::with_capacity(capacity),
                next_seq: 1,
            }),
            capacity,
            sender,
            lost_events: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the deque inconsistent (every
        // mutation is a single call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a flow. A flow without a UUID gets a fresh one (outside the lock).
    pub fn push(&self, flow: Flow) -> u64 {
        let flow = Arc::new(with_uuid(flow));
        self.insert(|seq| RecordedFlow::ready(seq, flow))
    }

    /// Records a flow that `render` builds when it is first read (a UUID is given
    /// then). `render` runs outside the ring's lock, on the reader's thread, and at
    /// most once; what it needs it must own.
    pub fn push_lazy(&self, render: Render) -> u64 {
        self.insert(|seq| RecordedFlow::lazy(seq, render))
    }

    fn insert(&self, entry: impl FnOnce(u64) -> RecordedFlow) -> u64 {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let entry = Arc::new(entry(seq));
        if inner.flows.len() == self.capacity {
            inner.flows.pop_front();
        }
        inner.flows.push_back(Arc::clone(&entry));
        // Sent under the lock so that followers see flows in `seq` order and a
        // subscription taken under the same lock misses nothing. `send` fails only
        // when nobody follows.
        let _ = self.sender.send(entry);
        seq
    }

    /// The flows held, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<RecordedFlow>> {
        self.lock().flows.iter().cloned().collect()
    }

    /// The flows held plus every flow pushed from now on.
    pub fn subscribe(&self) -> Subscription {
        let inner = self.lock();
        Subscription {
            receiver: self.sender.subscribe(),
            snapshot: inner.flows.iter().cloned().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Flows pushed since the ring was made.
    pub fn seen(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Flows that slow followers did not receive.
    pub fn lost_events(&self) -> u64 {
        self.lost_events.load(Ordering::Relaxed)
    }

    pub fn record_lost(&self, n: u64) {
        self.lost_events.fetch_add(n, Ordering::Relaxed);
    }
}

impl Default for FlowRing {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> Flow {
        Flow {
            proxy_port: n,
            ..Flow::default()
        }
    }

    fn ports(v: &[Arc<RecordedFlow>]) -> Vec<u32> {
        v.iter().map(|e| e.flow().proxy_port).collect()
    }

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let ring = FlowRing::new(3);
        for n in 1..=5 {
            ring.push(flow(n));
        }
        assert_eq!(ports(&ring.snapshot()), [3, 4, 5]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.seen(), 5);
        assert_eq!(ring.snapshot()[0].seq, 3);
    }

    #[test]
    fn assigns_uuids_but_keeps_given_ones() {
        let ring = FlowRing::new(4);
        ring.push(flow(1));
        ring.push(Flow {
            uuid: "given".into(),
            ..flow(2)
        });
        let snap = ring.snapshot();
        assert_eq!(snap[0].flow().uuid.len(), 36);
        assert_ne!(snap[0].flow().uuid, "given");
        assert_eq!(snap[1].flow().uuid, "given");
    }

    #[tokio::test]
    async fn followers_get_later_flows_and_lag_is_reported() {
        let ring = FlowRing::with_follow_buffer(16, 2);
        ring.push(flow(1));
        let mut sub = ring.subscribe();
        assert_eq!(ports(&sub.snapshot), [1]);
        for n in 2..=5 {
            ring.push(flow(n));
        }
        // The buffer held 2: flows 2 and 3 were overwritten for this follower.
        match sub.receiver.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 2),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(
            sub.receiver.recv().await.map(|e| e.flow().proxy_port).ok(),
            Some(4)
        );
        assert_eq!(
            sub.receiver.recv().await.map(|e| e.flow().proxy_port).ok(),
            Some(5)
        );
    }

    #[test]
    fn lazy_flows_render_once_when_read_with_a_stable_uuid() {
        let renders = Arc::new(AtomicU64::new(0));
        let ring = FlowRing::new(2);
        for n in 1..=3 {
            let renders = Arc::clone(&renders);
            ring.push_lazy(Box::new(move || {
                renders.fetch_add(1, Ordering::Relaxed);
                flow(n)
            }));
        }
        // The first was overwritten unread: never rendered. Nothing rendered yet.
        assert_eq!(renders.load(Ordering::Relaxed), 0);
        let snap = ring.snapshot();
        assert_eq!(ports(&snap), [2, 3]);
        assert_eq!(renders.load(Ordering::Relaxed), 2);
        let uuid = snap[0].flow().uuid.clone();
        assert_eq!(uuid.len(), 36);
        // Read again (another observer): the same record, not rendered again.
        assert_eq!(ring.snapshot()[0].flow().uuid, uuid);
        assert_eq!(renders.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn concurrent_pushes_keep_sequence_dense() {
        let ring = Arc::new(FlowRing::new(10_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    for n in 0..500 {
                        ring.push(flow(n));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let seqs: Vec<u64> = ring.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=2000).collect::<Vec<_>>());
    }
}
