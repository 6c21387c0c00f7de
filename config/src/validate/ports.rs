//! `toPorts` (ports, protocols, L7 rules) and `icmps` of Cilium rules.
//!
//! The L7 rules are compiled here with `sluice-l7`, the very compiler the enforcement
//! engines use, so a rule that passes validation is one the engines can run.

use sluice_l7::dns::{FqdnField, FqdnPattern};
use sluice_l7::http::{HeaderMatchSpec, HttpRule, HttpRuleField, HttpRuleSpec, SecretRef};
use sluice_l7::kafka::{KafkaRule, KafkaRuleField, KafkaRuleSpec};
use sluice_l7::quote::go_quote;

use super::Report;
use super::names;
use crate::diag::FieldPath;
use crate::types::{
    FqdnSelector, HttpRule as HttpRuleYaml, IcmpField, IcmpRule, KafkaRule as KafkaRuleYaml,
    L7Rules, PortProtocol, PortRule,
};

/// Most ports in one port rule, and most ICMP fields in one `icmps` entry (Cilium `maxPorts`,
/// `maxICMPFields`).
const MAX_PORTS: usize = 40;
const MAX_ICMP_FIELDS: usize = 40;
const MAX_PORT: u32 = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Ingress,
    Egress,
}

/// Where a port rule sits: direction, allow or deny, endpoint or host policy.
#[derive(Debug, Clone, Copy)]
pub(super) struct Section {
    pub(super) direction: Direction,
    pub(super) deny: bool,
    /// The rule selects nodes (`nodeSelector`): Cilium's host firewall.
    pub(super) host: bool,
}

pub(super) fn to_ports_and_icmps(
    to_ports: Option<&[PortRule]>,
    icmps: Option<&[IcmpRule]>,
    at: &FieldPath,
    section: Section,
    report: &mut Report,
) {
    let to_ports = to_ports.unwrap_or_default();
    let icmps = icmps.unwrap_or_default();
    if !icmps.is_empty() && !to_ports.is_empty() {
        report.add(
            &at.key("icmps"),
            "the ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts",
        );
    }
    for (i, pr) in to_ports.iter().enumerate() {
        port_rule(pr, &at.key("toPorts").index(i), section, report);
    }
    for (i, icmp) in icmps.iter().enumerate() {
        icmp_rule(icmp, &at.key("icmps").index(i), report);
    }
}

/// Cilium `L7Rules.IsEmpty`: an absent list and an empty one differ. `http: []` is an HTTP
/// rule set that allows no request, so it is L7.
fn has_l7(rules: &L7Rules) -> bool {
    rules.http.is_some()
        || rules.kafka.is_some()
        || rules.dns.is_some()
        || rules.l7proto.as_deref().is_some_and(|p| !p.is_empty())
        || rules.l7.is_some()
}

fn port_rule(pr: &PortRule, at: &FieldPath, section: Section, report: &mut Report) {
    if section.deny {
        deny_port_rule(pr, at, report);
        return;
    }
    let l7 = pr.rules.as_ref().filter(|r| has_l7(r));
    // Cilium `hasDNSRules` counts entries, not presence.
    let has_dns = l7.is_some_and(|r| r.dns.as_ref().is_some_and(|d| !d.is_empty()));
    let rules_at = at.key("rules");

    if let Some(names) = &pr.server_names {
        if !names.is_empty() && l7.is_some() && pr.terminating_tls.is_none() {
            report.add(
                &at.key("serverNames"),
                "ServerNames are not allowed with L7 rules without TLS termination",
            );
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                report.add(
                    &at.key("serverNames").index(i),
                    "empty server name is not allowed",
                );
            }
        }
    }
    for (key, present) in [
        ("terminatingTLS", pr.terminating_tls.is_some()),
        ("originatingTLS", pr.originating_tls.is_some()),
    ] {
        if present {
            report.add(
                &at.key(key),
                format!("{key} is not supported by sluice yet: TLS interception has not landed; remove it, or allow the TLS traffic without L7 rules"),
            );
        }
    }
    if pr.listener.is_some() {
        report.add(
            &at.key("listener"),
            "listener (a CiliumEnvoyConfig listener) is not supported by sluice: sluice has no Envoy; use L7 rules instead",
        );
    }

    let ports = pr.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        report.add(
            &at.key("ports"),
            format!("too many ports, the max is {MAX_PORTS}"),
        );
    }
    for (i, pp) in ports.iter().enumerate() {
        let pp_at = at.key("ports").index(i);
        let parsed = port_protocol(pp, &pp_at, has_dns, report);
        let Some(l7) = l7 else {
            continue;
        };
        if parsed.zero {
            let message = if l7.dns.is_some() {
                "port 53 must be specified for DNS rules"
            } else {
                "L7 rules can not be used when a port is 0"
            };
            report.add(
                &field_or_entry(&pp_at, "port", !pp.port.is_empty()),
                message,
            );
        }
        // DNS rules may use TCP, UDP or ANY; every other L7 parser needs TCP.
        if !has_dns && let Some(proto) = parsed.protocol.filter(|p| *p != "TCP") {
            report.add(
                &field_or_entry(&pp_at, "protocol", pp.protocol.is_some()),
                format!("L7 rules can only apply to TCP (not {proto}) except for DNS rules"),
            );
        }
    }

    let Some(l7) = l7 else {
        return;
    };
    if ports.is_empty() {
        if l7.dns.is_some() {
            report.add(at, "port 53 must be specified for DNS rules");
        } else {
            // Cilium lets this through and ends up with L7 rules on every port; a proxy
            // cannot parse HTTP or Kafka on ports it does not know.
            report.add(
                at,
                "L7 rules can not be used when a port is 0: list the ports the rules apply to",
            );
        }
    }
    if section.direction == Direction::Ingress && has_dns {
        report.add(&rules_at.key("dns"), "DNS rules are not allowed on ingress");
    }
    if section.host {
        match section.direction {
            Direction::Ingress => {
                report.add(&rules_at, "L7 policy is not supported on host ingress yet");
            }
            Direction::Egress => {
                for (key, name, count) in [
                    ("http", "HTTP", l7.http.as_ref().map_or(0, Vec::len)),
                    ("kafka", "Kafka", l7.kafka.as_ref().map_or(0, Vec::len)),
                ] {
                    if count > 0 {
                        report.add(
                            &rules_at.key(key),
                            format!("L7 protocol {name} is not supported on host egress yet"),
                        );
                    }
                }
            }
        }
    }
    l7_rules(l7, &rules_at, report);
}

/// Cilium's deny rules take `ports` only (`PortDenyRule`).
fn deny_port_rule(pr: &PortRule, at: &FieldPath, report: &mut Report) {
    if pr.rules.is_some() {
        report.add(&at.key("rules"), "deny rules cannot carry L7 rules");
    }
    for (key, present) in [
        ("terminatingTLS", pr.terminating_tls.is_some()),
        ("originatingTLS", pr.originating_tls.is_some()),
        ("serverNames", pr.server_names.is_some()),
        ("listener", pr.listener.is_some()),
    ] {
        if present {
            report.add(&at.key(key), format!("deny rules cannot carry {key}"));
        }
    }
    let ports = pr.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        report.add(
            &at.key("ports"),
            format!("too many ports, the max is {MAX_PORTS}"),
        );
    }
    for (i, pp) in ports.iter().enumerate() {
        port_protocol(pp, &at.key("ports").index(i), false, report);
    }
}

/// What the rest of a port rule's checks need to know about one port.
struct ParsedPort {
    /// Port 0 or empty: all ports.
    zero: bool,
    /// Upper-case protocol (`ANY` when unset); `None` when it is not one Cilium accepts.
    protocol: Option<&'static str>,
}

/// `{port, endPort, protocol}` (Cilium `PortProtocol.Validate`).
fn port_protocol(
    pp: &PortProtocol,
    at: &FieldPath,
    has_dns: bool,
    report: &mut Report,
) -> ParsedPort {
    let port = pp.port.as_str();
    let port_at = at.key("port");
    // `None`: a named port, or one that did not parse.
    let mut number: Option<u32> = None;
    let mut named = false;
    if port.is_empty() {
        // Cilium 1.20 rejects an empty port ("port must be specified"); spec §5 reads it as
        // port 0, all ports, which is what older Cilium did.
        number = Some(0);
    } else if names::is_port_name(port, true) {
        // Port names are IANA service names; Cilium checks this form before numbers, so
        // `0x10` is a name, not 16.
        named = true;
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        match port.parse::<u32>() {
            Ok(n) if n > MAX_PORT => report.add(
                &port_at,
                format!("unable to parse port {}: {n} is out of range 0-{MAX_PORT}", go_quote(port)),
            ),
            // Go's ParseUint(port, 0, 16), which Cilium uses, reads a leading zero as octal:
            // "010" is port 8 there. Refusing it avoids meaning something else than Cilium.
            Ok(n) if port.len() > 1 && port.starts_with('0') => report.add(
                &port_at,
                format!(
                    "unable to parse port {}: a leading zero makes Cilium read the port as octal; write {n} without it, or the octal value in decimal",
                    go_quote(port)
                ),
            ),
            Ok(n) => number = Some(n),
            Err(_) => report.add(
                &port_at,
                format!("unable to parse port {}: out of range 0-{MAX_PORT}", go_quote(port)),
            ),
        }
    } else {
        report.add(
            &port_at,
            format!(
                "unable to parse port {}: not a number 0-{MAX_PORT} nor a port name ({})",
                go_quote(port),
                names::PORT_NAME_RULES
            ),
        );
    }

    // Cilium's endPort is an int32 whose zero value means "no range".
    if let Some(end) = pp.end_port.filter(|e| *e != 0) {
        let end_at = at.key("endPort");
        if !(0..=i64::from(MAX_PORT)).contains(&end) {
            report.add(
                &end_at,
                format!("endPort {end} is out of range 0-{MAX_PORT}"),
            );
        } else if named {
            report.add(&end_at, "endPort cannot be used with a named port");
        } else if let Some(start) = number {
            if start == 0 {
                report.add(&end_at, "endPort needs a non-zero port to start the range");
            } else if end < i64::from(start) {
                report.add(
                    &end_at,
                    format!("endPort {end} must not be less than port {start}"),
                );
            } else if has_dns && end > i64::from(start) {
                report.add(&end_at, "DNS rules do not support port ranges");
            }
        }
    }

    let protocol = match pp.protocol.as_deref().unwrap_or("") {
        "" => Some("ANY"),
        p => match p.to_ascii_uppercase().as_str() {
            "TCP" => Some("TCP"),
            "UDP" => Some("UDP"),
            "SCTP" => Some("SCTP"),
            "ANY" => Some("ANY"),
            upper => {
                // Cilium ParseL4Proto: upper-cases, then quotes the upper-cased value.
                report.add(
                    &at.key("protocol"),
                    format!(
                        "invalid protocol {}, must be {{ tcp | udp | sctp | any }}",
                        go_quote(upper)
                    ),
                );
                None
            }
        },
    };
    ParsedPort {
        zero: number == Some(0),
        protocol,
    }
}

/// `at.key(key)` when the user wrote that key, else `at` (a path must name something that
/// exists in the YAML for the loader to find its line).
fn field_or_entry(at: &FieldPath, key: &str, present: bool) -> FieldPath {
    if present { at.key(key) } else { at.clone() }
}

/// Cilium `L7Rules.Validate` plus the compilers of sluice-l7.
fn l7_rules(l7: &L7Rules, at: &FieldPath, report: &mut Report) {
    let kinds = [
        l7.http.is_some(),
        l7.kafka.is_some(),
        l7.dns.is_some(),
        l7.l7proto.as_deref().is_some_and(|p| !p.is_empty()) || l7.l7.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        report.add(
            at,
            "multiple L7 protocol rule types specified in single rule",
        );
    }
    for (key, present) in [("l7proto", l7.l7proto.is_some()), ("l7", l7.l7.is_some())] {
        if present {
            report.add(
                &at.key(key),
                "generic L7 rules (l7proto / l7) are not supported by sluice: it enforces http, kafka and dns rules",
            );
        }
    }
    for (i, rule) in l7.http.iter().flatten().enumerate() {
        http_rule(rule, &at.key("http").index(i), report);
    }
    for (i, rule) in l7.kafka.iter().flatten().enumerate() {
        kafka_rule(rule, &at.key("kafka").index(i), report);
    }
    for (i, sel) in l7.dns.iter().flatten().enumerate() {
        fqdn_selector(sel, &at.key("dns").index(i), report);
    }
}

fn http_rule(rule: &HttpRuleYaml, at: &FieldPath, report: &mut Report) {
    let spec = HttpRuleSpec {
        method: rule.method.clone(),
        path: rule.path.clone(),
        host: rule.host.clone(),
        headers: rule.headers.clone().unwrap_or_default(),
        header_matches: rule
            .header_matches
            .iter()
            .flatten()
            .map(|m| HeaderMatchSpec {
                name: m.name.clone(),
                value: m.value.clone(),
                secret: m.secret.as_ref().map(|s| SecretRef {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                }),
                mismatch: m.mismatch.clone(),
            })
            .collect(),
    };
    // Secrets are read when the policy is compiled for enforcement, not here: validation
    // only wants the errors, and a secret that cannot be read is not an error (the entry
    // falls back to its value, or never matches).
    let Err(issues) = HttpRule::compile(&spec, &|_| None) else {
        return;
    };
    let matches = rule.header_matches.as_deref().unwrap_or_default();
    for issue in issues {
        let field_at = match issue.field {
            HttpRuleField::Method => at.key("method"),
            HttpRuleField::Path => at.key("path"),
            HttpRuleField::Host => at.key("host"),
            HttpRuleField::Header(i) => at.key("headers").index(i),
            HttpRuleField::HeaderMatchName(i) => {
                let entry = at.key("headerMatches").index(i);
                // `name` defaults to "" when absent: point at the entry then.
                let written = matches.get(i).is_some_and(|m| !m.name.is_empty());
                field_or_entry(&entry, "name", written)
            }
            HttpRuleField::HeaderMatchMismatch(i) => {
                at.key("headerMatches").index(i).key("mismatch")
            }
            HttpRuleField::HeaderMatchSecretName(i) => {
                at.key("headerMatches").index(i).key("secret")
            }
        };
        report.add(&field_at, issue.to_string());
    }
}

fn kafka_rule(rule: &KafkaRuleYaml, at: &FieldPath, report: &mut Report) {
    let spec = KafkaRuleSpec {
        role: rule.role.clone(),
        api_key: rule.api_key.clone(),
        api_version: rule.api_version.clone(),
        client_id: rule.client_id.clone(),
        topic: rule.topic.clone(),
    };
    let Err(errors) = KafkaRule::compile(&spec) else {
        return;
    };
    for error in errors {
        let key = match error.field() {
            KafkaRuleField::Role => "role",
            KafkaRuleField::ApiKey => "apiKey",
            KafkaRuleField::ApiVersion => "apiVersion",
            KafkaRuleField::Topic => "topic",
        };
        report.add(&at.key(key), error.to_string());
    }
}

/// A `toFQDNs` or `rules.dns` entry.
pub(super) fn fqdn_selector(sel: &FqdnSelector, at: &FieldPath, report: &mut Report) {
    let Err(errors) =
        FqdnPattern::from_selector(sel.match_name.as_deref(), sel.match_pattern.as_deref())
    else {
        return;
    };
    for error in errors {
        let field_at = match error.field() {
            FqdnField::Selector => at.clone(),
            FqdnField::MatchName => at.key("matchName"),
            FqdnField::MatchPattern => at.key("matchPattern"),
        };
        report.add(&field_at, error.to_string());
    }
}

/// ICMP type names by family (Cilium pkg/policy/api/icmp.go).
const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

/// An `icmps` entry (Cilium `ICMPRule.Validate`, `ICMPField.UnmarshalJSON`).
fn icmp_rule(rule: &IcmpRule, at: &FieldPath, report: &mut Report) {
    let fields = rule.fields.as_deref().unwrap_or_default();
    if fields.len() > MAX_ICMP_FIELDS {
        report.add(
            &at.key("fields"),
            format!("too many types, the max is {MAX_ICMP_FIELDS}"),
        );
    }
    for (i, field) in fields.iter().enumerate() {
        icmp_field(field, &at.key("fields").index(i), report);
    }
}

fn icmp_field(field: &IcmpField, at: &FieldPath, report: &mut Report) {
    let family = field.family.as_deref().unwrap_or("");
    let table = match family {
        "" | "IPv4" => ICMPV4_TYPES,
        "IPv6" => ICMPV6_TYPES,
        other => {
            report.add(&at.key("family"), format!("wrong family: {other}"));
            return;
        }
    };
    let t = field.icmp_type.as_str();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        if t.parse::<u8>().is_err() {
            report.add(
                &at.key("type"),
                format!("ICMP type {t} is out of range 0-255"),
            );
        }
    } else if !table.iter().any(|(name, _)| *name == t) {
        let family = if family.is_empty() { "IPv4" } else { family };
        report.add(
            &at.key("type"),
            format!("ICMP type {t} not found in {family}"),
        );
    }
}
