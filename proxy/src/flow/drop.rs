//! Datapath drop reasons: Hubble's `DropReason` enum (numbers shared with Cilium's
//! datapath) and the text its compact printer shows.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sluice_identity::DropReason;

/// A drop reason number (`drop_reason_desc`, and the sub-type of drop events). Unknown
/// numbers survive a round trip; protojson writes them as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DropReasonDesc(pub u32);

/// Names from cilium/cilium api/v1/flow/flow.proto `enum DropReason`.
const NAMES: &[(u32, &str)] = &[
    (0, "DROP_REASON_UNKNOWN"),
    (130, "INVALID_SOURCE_MAC"),
    (131, "INVALID_DESTINATION_MAC"),
    (132, "INVALID_SOURCE_IP"),
    (133, "POLICY_DENIED"),
    (134, "INVALID_PACKET_DROPPED"),
    (135, "CT_TRUNCATED_OR_INVALID_HEADER"),
    (136, "CT_MISSING_TCP_ACK_FLAG"),
    (137, "CT_UNKNOWN_L4_PROTOCOL"),
    (138, "CT_CANNOT_CREATE_ENTRY_FROM_PACKET"),
    (139, "UNSUPPORTED_L3_PROTOCOL"),
    (140, "MISSED_TAIL_CALL"),
    (141, "ERROR_WRITING_TO_PACKET"),
    (142, "UNKNOWN_L4_PROTOCOL"),
    (143, "UNKNOWN_ICMPV4_CODE"),
    (144, "UNKNOWN_ICMPV4_TYPE"),
    (145, "UNKNOWN_ICMPV6_CODE"),
    (146, "UNKNOWN_ICMPV6_TYPE"),
    (147, "ERROR_RETRIEVING_TUNNEL_KEY"),
    (148, "ERROR_RETRIEVING_TUNNEL_OPTIONS"),
    (149, "INVALID_GENEVE_OPTION"),
    (150, "UNKNOWN_L3_TARGET_ADDRESS"),
    (151, "STALE_OR_UNROUTABLE_IP"),
    (152, "NO_MATCHING_LOCAL_CONTAINER_FOUND"),
    (153, "ERROR_WHILE_CORRECTING_L3_CHECKSUM"),
    (154, "ERROR_WHILE_CORRECTING_L4_CHECKSUM"),
    (155, "CT_MAP_INSERTION_FAILED"),
    (156, "INVALID_IPV6_EXTENSION_HEADER"),
    (157, "IP_FRAGMENTATION_NOT_SUPPORTED"),
    (158, "SERVICE_BACKEND_NOT_FOUND"),
    (160, "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT"),
    (161, "FAILED_TO_INSERT_INTO_PROXYMAP"),
    (162, "REACHED_EDT_RATE_LIMITING_DROP_HORIZON"),
    (163, "UNKNOWN_CONNECTION_TRACKING_STATE"),
    (164, "LOCAL_HOST_IS_UNREACHABLE"),
    (165, "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION"),
    (166, "UNSUPPORTED_L2_PROTOCOL"),
    (167, "NO_MAPPING_FOR_NAT_MASQUERADE"),
    (168, "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE"),
    (169, "FIB_LOOKUP_FAILED"),
    (170, "ENCAPSULATION_TRAFFIC_IS_PROHIBITED"),
    (171, "INVALID_IDENTITY"),
    (172, "UNKNOWN_SENDER"),
    (173, "NAT_NOT_NEEDED"),
    (174, "IS_A_CLUSTERIP"),
    (175, "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND"),
    (176, "FORBIDDEN_ICMPV6_MESSAGE"),
    (177, "DENIED_BY_LB_SRC_RANGE_CHECK"),
    (178, "SOCKET_LOOKUP_FAILED"),
    (179, "SOCKET_ASSIGN_FAILED"),
    (180, "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL"),
    (181, "POLICY_DENY"),
    (182, "VLAN_FILTERED"),
    (183, "INVALID_VNI"),
    (184, "INVALID_TC_BUFFER"),
    (185, "NO_SID"),
    (186, "MISSING_SRV6_STATE"),
    (187, "NAT46"),
    (188, "NAT64"),
    (189, "AUTH_REQUIRED"),
    (190, "CT_NO_MAP_FOUND"),
    (191, "SNAT_NO_MAP_FOUND"),
    (192, "INVALID_CLUSTER_ID"),
    (193, "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP"),
    (194, "NO_EGRESS_GATEWAY"),
    (195, "UNENCRYPTED_TRAFFIC"),
    (196, "TTL_EXCEEDED"),
    (197, "NO_NODE_ID"),
    (198, "DROP_RATE_LIMITED"),
    (199, "IGMP_HANDLED"),
    (200, "IGMP_SUBSCRIBED"),
    (201, "MULTICAST_HANDLED"),
    (202, "DROP_HOST_NOT_READY"),
    (203, "DROP_EP_NOT_READY"),
    (204, "DROP_NO_EGRESS_IP"),
    (205, "DROP_PUNT_PROXY"),
];

impl DropReasonDesc {
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(n, _)| *n == self.0).map(|(_, s)| *s)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(_, s)| *s == name)
            .map(|(n, _)| Self(*n))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// What Hubble's compact printer shows in the type column of a drop event. sluice
    /// produces the policy drops; other numbers print as numbers, as Hubble does for
    /// reasons it has no text for.
    pub fn text(self) -> String {
        [
            DropReason::PolicyDenied,
            DropReason::PolicyDenyList,
            DropReason::AuthRequired,
        ]
        .into_iter()
        .find(|r| u32::from(r.code()) == self.0)
        .map_or_else(|| self.0.to_string(), |r| r.text().to_owned())
    }
}

impl From<DropReason> for DropReasonDesc {
    fn from(r: DropReason) -> Self {
        Self(u32::from(r.code()))
    }
}

impl fmt::Display for DropReasonDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for DropReasonDesc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u32(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for DropReasonDesc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DropReasonDesc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DropReason name or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DropReasonDesc, E> {
                DropReasonDesc::from_name(v)
                    .ok_or_else(|| E::custom(format!("unknown DropReason {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DropReasonDesc, E> {
                u32::try_from(v)
                    .map(DropReasonDesc)
                    .map_err(|_| E::custom(format!("DropReason {v} out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DropReasonDesc, E> {
                u32::try_from(v)
                    .map(DropReasonDesc)
                    .map_err(|_| E::custom(format!("DropReason {v} out of range")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sluice_drop_reasons_have_hubble_names_and_texts() {
        // Names: flow.proto; texts: cilium pkg/monitor/api/drop.go via printer_test.go
        // ("Policy denied") and spec §15.
        let cases = [
            (DropReason::PolicyDenied, "POLICY_DENIED", "Policy denied"),
            (
                DropReason::PolicyDenyList,
                "POLICY_DENY",
                "Policy denied by denylist",
            ),
            (
                DropReason::AuthRequired,
                "AUTH_REQUIRED",
                "Authentication required",
            ),
        ];
        for (reason, name, text) in cases {
            let d = DropReasonDesc::from(reason);
            assert_eq!(d.name(), Some(name));
            assert_eq!(d.text(), text);
            assert_eq!(DropReasonDesc::from_name(name), Some(d));
            // The identity crate's own name must agree with Hubble's.
            assert_eq!(reason.desc(), name);
        }
        assert_eq!(DropReasonDesc(159).text(), "159");
        assert_eq!(DropReasonDesc(159).to_string(), "159");
    }
}
