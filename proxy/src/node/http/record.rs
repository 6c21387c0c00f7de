//! Hubble L7 flows of the HTTP engine: one REQUEST record when a request is decided
//! (FORWARDED or DROPPED) and one RESPONSE record when its answer starts (the upstream's
//! status, or the proxy's own 403 / 4xx / 503), linked by the same request line and
//! carrying the latency between the two (spec §15).
//!
//! Request headers are recorded, as Hubble does, except the values of credentials
//! (`authorization`, `cookie` …) and of headers that a `headerMatches` secret covers,
//! which show as `[redacted]`: flows are read by more people than secrets are.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderMap, Method, Version};
use sluice_identity::policy::CompiledPolicy;
use sluice_identity::{Direction, Identity, PolicyRef};
use sluice_l7::http::REDACTED;

use super::super::proxy::{Shared, endpoint_of, push_lazy};
use super::super::state::Snapshot;
use super::ConnInfo;
use crate::flow::{
    Endpoint, Flow, FlowVerdict, HttpEvent, HttpHeader, HttpVersion, Policy, Timestamp,
};

/// A connection's two ends as its flows show them, for one policy generation: built
/// (labels and names formatted) once, when its first flow is read, not per request and
/// not on the connection's path.
#[derive(Debug)]
pub struct Parties {
    pub generation: u32,
    policy: Arc<CompiledPolicy>,
    source: (Identity, IpAddr),
    destination: (Identity, IpAddr),
    built: OnceLock<(Arc<Endpoint>, Arc<Endpoint>)>,
}

impl Parties {
    pub fn of(snapshot: &Snapshot, conn: &ConnInfo) -> Self {
        Self {
            generation: snapshot.generation,
            policy: Arc::clone(&snapshot.policy),
            source: (conn.key.source, conn.peer.ip()),
            destination: (conn.key.destination, conn.destination.ip()),
            built: OnceLock::new(),
        }
    }

    /// The source and destination endpoints.
    fn endpoints(&self) -> &(Arc<Endpoint>, Arc<Endpoint>) {
        self.built.get_or_init(|| {
            let universe = self.policy.universe();
            (
                endpoint_of(universe, self.source.0, self.source.1),
                endpoint_of(universe, self.destination.0, self.destination.1),
            )
        })
    }
}

/// Headers whose values are credentials.
const SENSITIVE: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// What the flows of one request say; built once, used for both records.
pub struct RequestRecord {
    /// The connection's two ends as flows show them.
    pub parties: Arc<Parties>,
    pub source_addr: SocketAddr,
    pub destination_addr: SocketAddr,
    pub direction: Direction,
    pub method: Method,
    pub url: String,
    pub version: Version,
    pub allowed_by: Vec<(Direction, Arc<PolicyRef>)>,
}

impl RequestRecord {
    fn event<'a>(&'a self, shared: &'a RecordContext) -> HttpEvent<'a> {
        HttpEvent {
            node_name: &shared.node_name,
            source: self.parties.endpoints().0.clone(),
            destination: self.parties.endpoints().1.clone(),
            source_addr: self.source_addr,
            destination_addr: self.destination_addr,
            direction: self.direction,
            method: self.method.as_str(),
            url: &self.url,
            version: version(self.version),
            proxy_port: Some(shared.proxy_port),
        }
    }

    fn with_policies(&self, mut flow: Flow, revision: u32) -> Flow {
        for (direction, policy) in &self.allowed_by {
            let p = Policy {
                revision: u64::from(revision),
                ..Policy::from(policy.as_ref())
            };
            let list = match direction {
                Direction::Egress => &mut flow.egress_allowed_by,
                Direction::Ingress => &mut flow.ingress_allowed_by,
            };
            if !list.contains(&p) {
                list.push(p);
            }
        }
        flow
    }

    /// The REQUEST record, built when it is read (`FlowRing::push_lazy`): until then the
    /// headers are kept as raw bytes ([`KeptHeaders`]).
    pub fn request(
        self: &Arc<Self>,
        shared: &Shared,
        snapshot: &Snapshot,
        forwarded: bool,
        headers: &HeaderMap,
        redact: Vec<String>,
    ) {
        let verdict = if forwarded {
            FlowVerdict::Forwarded
        } else {
            FlowVerdict::Dropped
        };
        let context = RecordContext::of(shared, snapshot);
        let record = Arc::clone(self);
        let headers = KeptHeaders::copy(headers);
        let time = Timestamp::now();
        push_lazy(
            shared,
            Box::new(move || {
                let redact: Vec<&str> = redact.iter().map(String::as_str).collect();
                let flow = Flow::http_request(
                    &record.event(&context),
                    time,
                    verdict,
                    flow_headers(headers.iter(), &redact),
                );
                record.with_policies(flow, context.revision)
            }),
        );
    }

    /// The RESPONSE record, built when it is read.
    pub fn response(
        self: &Arc<Self>,
        shared: &Shared,
        snapshot: &Snapshot,
        status: u16,
        latency: Duration,
    ) {
        let context = RecordContext::of(shared, snapshot);
        let record = Arc::clone(self);
        let time = Timestamp::now();
        push_lazy(
            shared,
            Box::new(move || {
                let flow =
                    Flow::http_response(&record.event(&context), time, status, latency, Vec::new());
                record.with_policies(flow, context.revision)
            }),
        );
    }
}

/// What a record takes from the node and the snapshot it was decided on.
struct RecordContext {
    node_name: Arc<str>,
    proxy_port: u16,
    revision: u32,
}

impl RecordContext {
    fn of(shared: &Shared, snapshot: &Snapshot) -> Self {
        Self {
            node_name: Arc::clone(&shared.node_name),
            proxy_port: snapshot.config.node.proxy_port,
            revision: snapshot.generation,
        }
    }
}

fn version(v: Version) -> HttpVersion {
    match v {
        Version::HTTP_10 | Version::HTTP_09 => HttpVersion::Http10,
        Version::HTTP_2 | Version::HTTP_3 => HttpVersion::Http2,
        _ => HttpVersion::Http11,
    }
}

/// A request's headers kept for its flow: copied into one buffer, not a `HeaderMap`
/// clone, whose values share the connection's read buffer and would keep it alive for
/// as long as the flow waits in the ring.
struct KeptHeaders {
    bytes: Vec<u8>,
    /// Each header's name and value lengths, in order, laid end to end in `bytes`.
    lengths: Vec<(usize, usize)>,
}

impl KeptHeaders {
    fn copy(headers: &HeaderMap) -> Self {
        let mut kept = Self {
            bytes: Vec::with_capacity(
                headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len())
                    .sum(),
            ),
            lengths: Vec::with_capacity(headers.len()),
        };
        for (name, value) in headers {
            kept.bytes.extend_from_slice(name.as_str().as_bytes());
            kept.bytes.extend_from_slice(value.as_bytes());
            kept.lengths.push((name.as_str().len(), value.len()));
        }
        kept
    }

    /// Names (lowercase, as `HeaderName` keeps them) and values, in the request's order.
    fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut at = 0;
        self.lengths.iter().map(move |&(name, value)| {
            let (n, v) = (
                &self.bytes[at..at + name],
                &self.bytes[at + name..at + name + value],
            );
            at += name + value;
            // Names were `HeaderName`s: ASCII.
            (std::str::from_utf8(n).unwrap_or_default(), v)
        })
    }
}

/// The request headers as a flow lists them, credentials redacted.
fn flow_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    redact: &[&str],
) -> Vec<HttpHeader> {
    headers
        .map(|(key, value)| {
            let hidden =
                SENSITIVE.contains(&key) || redact.iter().any(|r| r.eq_ignore_ascii_case(key));
            HttpHeader {
                key: key.to_owned(),
                value: if hidden {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(value).into_owned()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secret_headers_are_redacted_the_rest_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("x-api-key", "k1".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        h.append("accept", "text/plain".parse().unwrap());
        let kept = KeptHeaders::copy(&h);
        let got = flow_headers(kept.iter(), &["X-Api-Key"]);
        assert_eq!(
            got.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
            ["authorization", "x-api-key", "accept", "accept"]
        );
        let accepts: Vec<&str> = got
            .iter()
            .filter(|x| x.key == "accept")
            .map(|x| x.value.as_str())
            .collect();
        assert_eq!(accepts, ["*/*", "text/plain"]);
        let value = |k: &str| got.iter().find(|x| x.key == k).unwrap().value.clone();
        assert_eq!(value("authorization"), REDACTED);
        assert_eq!(value("x-api-key"), REDACTED);
        assert_eq!(value("accept"), "*/*");
    }
}
