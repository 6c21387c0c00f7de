//! Live restart: `sluice up --takeover` starts a new node (the successor) that takes
//! everything over from the running one (the predecessor) without stopping a workload
//! or leaving a moment in which pods' DNS or connections go unanswered.
//!
//! Why a new process that receives descriptors, rather than re-executing in place:
//!
//! - The predecessor keeps serving until the successor serves too: both read the very
//!   same sockets (proxy listeners, the DNS proxy's UDP socket and TCP listener, the admin
//!   socket), so a query arriving during the switch waits in its socket's queue for
//!   whichever process reads next, and there is no window in which nobody reads.
//! - What the predecessor already holds (queries waiting for their resolver, spliced and
//!   HTTP connections) it finishes itself while the successor takes everything new, as
//!   Envoy's hot restart drains; a re-exec would have to cut them or serialise them.
//! - A successor that fails (a broken configuration, a refused check, a crash) fails
//!   before the predecessor let go of anything: the predecessor just keeps serving.
//! - Descriptors received with `SCM_RIGHTS` arrive as owned descriptors; adopting
//!   inherited descriptor numbers after an exec would need `unsafe` (denied here).
//!
//! The price: the pods' processes stay children of the predecessor's process until it
//! exits, then of init (the node kills them through their cgroup, never by pid), and the
//! node's process id changes with every restart.
//!
//! What is handed over, and how ownership moves, see [`wire`] for the exchange:
//!
//! | what | how |
//! |---|---|
//! | BPF programs | stay attached through their pinned links; the successor opens the pins |
//! | BPF maps (and their entries) | descriptors; the same maps, nothing is copied |
//! | node lock, per-cgroup instance locks | descriptors: an `flock` belongs to the open file, so the lock is never free |
//! | proxy listeners, DNS UDP + TCP, admin socket | descriptors: the same sockets |
//! | pods (netns, veth, cgroup, running command) | left in place; the successor checks and adopts them |
//! | flows recorded so far | not handed over: `sluice observe` starts empty |
//!
//! Every object with a cleanup on drop (pods, cgroups, links, lock files, the admin
//! socket file) is either owned or released. The predecessor releases everything before
//! it says `released`; an adopted object starts released and the successor owns it only
//! once the predecessor said `released`. So whichever side fails, at most one process
//! ever cleans up, and a successor that gives up leaves the predecessor whole.
//!
//! Node state that is not kernel state (the FQDN cache) goes through its state file: the
//! predecessor saves it after it stopped reading and before it says `released`, and the
//! successor merges it after `released` (`FqdnEngine::adopt_saved`).

mod give;
mod take;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

pub(in crate::node) use give::reassert;
pub(crate) use give::{Giver, Offer, Serving, offer, step_down};
pub(crate) use take::{Adopted, Takeover};

use super::dns::DnsService;
use crate::admin::AdminServer;

/// How long a predecessor keeps serving what it holds after letting go, by default.
pub const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Duplicates of the node's listening sockets, taken when they are bound, for a
/// successor.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    proxy: Vec<(SocketAddr, OwnedFd)>,
    dns: Vec<(SocketAddr, sluice_dns::Sockets)>,
    admin: Option<OwnedFd>,
}

impl Sockets {
    pub fn collect(
        proxy: &[tokio::net::TcpListener],
        dns: Option<&DnsService>,
        admin: &AdminServer,
    ) -> io::Result<Self> {
        let proxy = proxy
            .iter()
            .map(|l| Ok((l.local_addr()?, l.as_fd().try_clone_to_owned()?)))
            .collect::<io::Result<Vec<_>>>()?;
        let dns = match dns {
            Some(d) => d
                .sockets()
                .map(|(addr, sockets)| Ok((addr, sockets.try_clone()?)))
                .collect::<io::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            proxy,
            dns,
            admin: Some(admin.try_clone_listener()?),
        })
    }
}
