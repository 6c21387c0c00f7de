//! Verdicts, drop reasons and authentication modes.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::PolicyRef;
use super::table::L7Policy;

/// `authentication.mode`, ordered by strength: across overlapping entries the
/// stronger one wins (spec §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AuthMode {
    #[serde(rename = "disabled")]
    Disabled,
    #[serde(rename = "required")]
    Required,
    #[serde(rename = "test-always-fail")]
    TestAlwaysFail,
}

impl AuthMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disabled" => Self::Disabled,
            "required" => Self::Required,
            "test-always-fail" => Self::TestAlwaysFail,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Required => "required",
            Self::TestAlwaysFail => "test-always-fail",
        }
    }

    /// Hubble's `auth_type` number (0 disabled, 1 SPIRE, 2 test-always-fail).
    pub fn auth_type(self) -> u8 {
        match self {
            Self::Disabled => 0,
            Self::Required => 1,
            Self::TestAlwaysFail => 2,
        }
    }
}

/// A datapath drop reason, with Cilium's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// 133: no rule allows it and the direction is enforced.
    PolicyDenied,
    /// 181: an explicit deny rule matches.
    PolicyDenyList,
    /// 189: allowed, but mutual authentication has not completed.
    AuthRequired,
}

impl DropReason {
    pub fn code(self) -> u8 {
        match self {
            Self::PolicyDenied => 133,
            Self::PolicyDenyList => 181,
            Self::AuthRequired => 189,
        }
    }

    /// The Hubble enum name (`drop_reason_desc`).
    pub fn desc(self) -> &'static str {
        match self {
            Self::PolicyDenied => "POLICY_DENIED",
            Self::PolicyDenyList => "POLICY_DENY",
            Self::AuthRequired => "AUTH_REQUIRED",
        }
    }

    /// The text Hubble's compact printer shows.
    pub fn text(self) -> &'static str {
        match self {
            Self::PolicyDenied => "Policy denied",
            Self::PolicyDenyList => "Policy denied by denylist",
            Self::AuthRequired => "Authentication required",
        }
    }
}

impl Serialize for DropReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allowed,
    Denied,
    /// Would be denied; audit mode lets it through and reports it.
    Audit,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Audit => "audit",
        }
    }
}

/// Why a direction decided what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// `policyEnforcement: never`.
    EnforcementDisabled,
    /// No rule selects the endpoint for this direction (or only rules with
    /// `enableDefaultDeny: false`, none of which matched): default allow.
    NotEnforced,
    /// A rule allows it.
    AllowedByRule,
    /// An explicit deny rule matches (181).
    DeniedByRule,
    /// The direction is enforced and no rule allows it (133).
    DefaultDeny,
    /// A policy selecting the endpoint was rejected; the direction fails closed (133).
    FailClosed,
}

/// The outcome for one direction of one connection.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// Set when the verdict is `denied`.
    pub drop_reason: Option<DropReason>,
    /// Set when the verdict is `audit`: the reason it would have been dropped for.
    pub audit_drop_reason: Option<DropReason>,
    pub kind: DecisionKind,
    pub enforced: bool,
    pub allowed_by: Vec<Arc<PolicyRef>>,
    pub denied_by: Vec<Arc<PolicyRef>>,
    /// Rejected policies that made this direction fail closed.
    pub rejected: Vec<Arc<PolicyRef>>,
    /// L7 rules that apply: the connection goes through the L7 proxy.
    pub l7: Option<L7Policy>,
    /// The authentication the allow requires, when not `disabled`.
    pub authentication: Option<AuthMode>,
}

impl Decision {
    pub fn needs_proxy(&self) -> bool {
        self.l7.is_some() && self.verdict != Verdict::Denied
    }
}
