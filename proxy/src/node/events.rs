//! Kernel-side decisions (the BPF ring buffer) become flows, so a connection decided in
//! the kernel (BYPASS or DENY at connect) is as visible as one the proxy decided.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_bpf::{EventReader, EventVerdict, KernelDropReason, KernelEvent};
use sluice_identity::Direction;
use tracing::warn;

use super::proxy::{Shared, endpoint_of, l3l4_match, push_l4};
use crate::flow::{FlowVerdict, L4Event, Layer4, Timestamp};

/// After the first event of a quiet spell, let more arrive before draining them: one
/// wake-up per batch instead of one per connection keeps the reader off the CPU that
/// the workloads' connections need (flows show up at most this much later).
const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Reads kernel events on a thread of its own until `stop` is set.
pub fn spawn_reader(
    mut reader: EventReader,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match reader.next_timeout(Duration::from_millis(200)) {
                Ok(Some(event)) => {
                    record(&shared, &event);
                    std::thread::sleep(BATCH_WINDOW);
                    while let Some(event) = reader.try_next() {
                        record(&shared, &event);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "reading kernel events failed; kernel decisions no longer become flows");
                    return;
                }
            }
        }
    })
}

fn record(shared: &Shared, e: &KernelEvent) {
    let (verdict, drop_reason) = match (e.verdict, e.drop_reason) {
        (EventVerdict::Forwarded, _) => (FlowVerdict::Forwarded, None),
        (EventVerdict::Dropped, Some(KernelDropReason::Policy(reason))) => {
            (FlowVerdict::Dropped, Some(reason))
        }
        (EventVerdict::Dropped, _) => (FlowVerdict::Dropped, None),
        // As the proxy reports audited connections: the verdict says it all.
        (EventVerdict::Audit, _) => (FlowVerdict::Audit, None),
        // The proxy reports what it decides for redirected connections.
        (EventVerdict::Redirected, _) => return,
    };
    let snapshot = shared.state.load();
    let universe = snapshot.policy.universe();
    // The kernel only knows the action; the policy names come from the engine, which
    // gave the kernel that action (same generation, same answer).
    let (endpoint, peer) = match e.direction {
        Direction::Egress => (e.src_identity, e.dst_identity),
        Direction::Ingress => (e.dst_identity, e.src_identity),
    };
    let decision = snapshot
        .policy
        .decide(endpoint, e.direction, peer, e.proto, e.dst.port());
    let ev = L4Event {
        time: Timestamp::now(),
        node_name: &shared.node_name,
        source: endpoint_of(universe, e.src_identity, e.src.ip()),
        destination: endpoint_of(universe, e.dst_identity, e.dst.ip()),
        source_ip: e.src.ip(),
        destination_ip: e.dst.ip(),
        l4: Layer4::connection(e.proto, e.src.port(), e.dst.port()),
        direction: e.direction,
        verdict,
        drop_reason,
        match_type: l3l4_match(&decision.allowed_by),
        allowed_by: &decision.allowed_by,
        denied_by: &decision.denied_by,
        policy_revision: u64::from(snapshot.generation),
        auth: None,
        proxy_port: None,
        socket_cookie: Some(e.socket_cookie),
        cgroup_id: Some(e.cgroup.0),
    };
    push_l4(shared, &ev);
}
