//! Kafka rules (`rules.kafka`), with Cilium 1.19's semantics (spec §13).

use std::fmt;

use crate::quote::go_quote;

/// Longest topic name a rule may hold. Kafka itself allows 249 since 0.10; Cilium keeps the
/// older 255 for compatibility, and so does sluice.
pub const MAX_TOPIC_LEN: usize = 255;

/// A Kafka API key (the request type), by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiKey(pub i16);

/// Names of the keys 0..=33, indexed by number (Cilium pkg/policy/api/kafka APIKeyMap, spec
/// §13). Keys above 33 exist on the wire but have no name a rule can use.
const API_KEY_NAMES: [&str; 34] = [
    "produce",
    "fetch",
    "offsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
];

impl ApiKey {
    pub const PRODUCE: Self = Self(0);
    pub const FETCH: Self = Self(1);
    pub const OFFSETS: Self = Self(2);
    pub const METADATA: Self = Self(3);
    pub const OFFSET_COMMIT: Self = Self(8);
    pub const OFFSET_FETCH: Self = Self(9);
    pub const FIND_COORDINATOR: Self = Self(10);
    pub const JOIN_GROUP: Self = Self(11);
    pub const HEARTBEAT: Self = Self(12);
    pub const LEAVE_GROUP: Self = Self(13);
    pub const SYNC_GROUP: Self = Self(14);
    pub const API_VERSIONS: Self = Self(18);

    /// The key named `name`, compared case-insensitively (`Produce`, `produce`).
    pub fn from_name(name: &str) -> Option<Self> {
        let index = API_KEY_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))?;
        i16::try_from(index).ok().map(Self)
    }

    /// The lowercase name, for keys that have one.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| API_KEY_NAMES.get(i))
            .copied()
    }

    /// Whether requests of this type carry topics, which then must all be allowed (spec §13;
    /// cilium/proxy proxylib/kafka, the keys with topics in their request).
    pub fn has_topics(self) -> bool {
        matches!(
            self.0,
            0 | 1 | 2 | 3 | 4 | 5 | 6 | 8 | 9 | 19 | 20 | 21 | 23 | 24 | 27 | 28 | 34 | 35 | 37
        )
    }
}

/// The name, or the number when the key has no name (as Cilium's `ApiKeyToString`).
impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A `role`: a named set of API keys for a high-level operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Produce,
    Consume,
}

impl Role {
    /// `produce` or `consume`, case-insensitively.
    pub fn parse(role: &str) -> Option<Self> {
        if role.eq_ignore_ascii_case("produce") {
            Some(Self::Produce)
        } else if role.eq_ignore_ascii_case("consume") {
            Some(Self::Consume)
        } else {
            None
        }
    }

    /// The keys the role stands for (Cilium `PortRule.GetAPIKeys`).
    pub fn api_keys(self) -> &'static [ApiKey] {
        match self {
            Self::Produce => &[ApiKey::PRODUCE, ApiKey::METADATA, ApiKey::API_VERSIONS],
            Self::Consume => &[
                ApiKey::FETCH,
                ApiKey::OFFSETS,
                ApiKey::METADATA,
                ApiKey::OFFSET_COMMIT,
                ApiKey::OFFSET_FETCH,
                ApiKey::FIND_COORDINATOR,
                ApiKey::JOIN_GROUP,
                ApiKey::HEARTBEAT,
                ApiKey::LEAVE_GROUP,
                ApiKey::SYNC_GROUP,
                ApiKey::API_VERSIONS,
            ],
        }
    }
}

/// A `rules.kafka` entry as written. Empty strings count as absent, as in Cilium.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaRuleSpec {
    pub role: Option<String>,
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    pub client_id: Option<String>,
    pub topic: Option<String>,
}

/// What is wrong with a Kafka rule. `Display` is Cilium's message
/// (pkg/policy/api/kafka/kafka.go `PortRule.Sanitize`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaRuleError {
    #[error("cannot set both Role {} and APIKey {} together", go_quote(.role), go_quote(.api_key))]
    RoleAndApiKey { role: String, api_key: String },
    #[error("invalid Kafka APIKey {}", go_quote(.0))]
    InvalidApiKey(String),
    #[error("invalid Kafka Role {}", go_quote(.0))]
    InvalidRole(String),
    #[error("invalid Kafka APIVersion {}", go_quote(.0))]
    InvalidApiVersion(String),
    #[error("kafka topic exceeds maximum len of {MAX_TOPIC_LEN}")]
    TopicTooLong,
    #[error("invalid Kafka Topic name {}", go_quote(.0))]
    InvalidTopic(String),
}

/// The field of a Kafka rule an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KafkaRuleField {
    Role,
    ApiKey,
    ApiVersion,
    Topic,
}

impl KafkaRuleError {
    pub fn field(&self) -> KafkaRuleField {
        match self {
            // Both fields are at fault; the key is what the user added last, usually.
            Self::RoleAndApiKey { .. } | Self::InvalidApiKey(_) => KafkaRuleField::ApiKey,
            Self::InvalidRole(_) => KafkaRuleField::Role,
            Self::InvalidApiVersion(_) => KafkaRuleField::ApiVersion,
            Self::TopicTooLong | Self::InvalidTopic(_) => KafkaRuleField::Topic,
        }
    }
}

/// Which API keys a rule admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ApiKeys {
    /// Neither `role` nor `apiKey`: every key, named or not.
    All,
    /// Bit `n` set: key `n` (all named keys are below 64).
    Set(u64),
}

/// A compiled `rules.kafka` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaRule {
    api_keys: ApiKeys,
    api_version: Option<i16>,
    client_id: Option<String>,
    topic: Option<String>,
}

impl KafkaRule {
    /// Compiles `spec`, reporting every error rather than the first.
    pub fn compile(spec: &KafkaRuleSpec) -> Result<Self, Vec<KafkaRuleError>> {
        let role = non_empty(&spec.role);
        let api_key = non_empty(&spec.api_key);
        let api_version = non_empty(&spec.api_version);
        let topic = non_empty(&spec.topic);
        let mut errors = Vec::new();

        if let (Some(role), Some(api_key)) = (role, api_key) {
            errors.push(KafkaRuleError::RoleAndApiKey {
                role: role.to_owned(),
                api_key: api_key.to_owned(),
            });
        }
        let parsed_key = api_key.and_then(|k| {
            let key = ApiKey::from_name(k);
            if key.is_none() {
                errors.push(KafkaRuleError::InvalidApiKey(k.to_owned()));
            }
            key
        });
        let parsed_role = role.and_then(|r| {
            let role = Role::parse(r);
            if role.is_none() {
                errors.push(KafkaRuleError::InvalidRole(r.to_owned()));
            }
            role
        });
        // Cilium: strconv.ParseInt(v, 10, 16), and not negative.
        let parsed_version = api_version.and_then(|v| {
            let version = v.parse::<i16>().ok().filter(|n| *n >= 0);
            if version.is_none() {
                errors.push(KafkaRuleError::InvalidApiVersion(v.to_owned()));
            }
            version
        });
        if let Some(t) = topic {
            if t.len() > MAX_TOPIC_LEN {
                errors.push(KafkaRuleError::TopicTooLong);
            } else if !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                errors.push(KafkaRuleError::InvalidTopic(t.to_owned()));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let api_keys = match (parsed_role, parsed_key) {
            (Some(role), _) => ApiKeys::Set(
                role.api_keys()
                    .iter()
                    .fold(0u64, |set, k| set | key_bit(*k)),
            ),
            (None, Some(key)) => ApiKeys::Set(key_bit(key)),
            (None, None) => ApiKeys::All,
        };
        Ok(Self {
            api_keys,
            api_version: parsed_version,
            client_id: non_empty(&spec.client_id).map(str::to_owned),
            topic: topic.map(str::to_owned),
        })
    }

    /// Whether a request's header (key, version, client ID) is admitted, topics aside.
    pub fn matches_header(
        &self,
        api_key: ApiKey,
        api_version: i16,
        client_id: Option<&str>,
    ) -> bool {
        let key_ok = match self.api_keys {
            ApiKeys::All => true,
            ApiKeys::Set(set) => set & key_bit(api_key) != 0,
        };
        key_ok
            && self.api_version.is_none_or(|v| v == api_version)
            && self
                .client_id
                .as_deref()
                .is_none_or(|id| client_id == Some(id))
    }

    /// The topic this rule is limited to; `None` covers every topic.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    pub fn covers_topic(&self, topic: &str) -> bool {
        self.topic.as_deref().is_none_or(|t| t == topic)
    }
}

/// The parts of a request that rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaRequest<'a> {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub client_id: Option<&'a str>,
    /// The topics the request names; empty for keys without topics.
    pub topics: &'a [&'a str],
}

/// Whether `rules` (one port's `rules.kafka`) allow `request` (cilium/proxy
/// `RequestMessage.MatchesRule`): an empty list allows nothing; otherwise every topic of the
/// request must be covered by some rule whose header part matches, and a request without
/// topics needs one such rule.
pub fn allows(rules: &[KafkaRule], request: &KafkaRequest<'_>) -> bool {
    let applicable = || {
        rules
            .iter()
            .filter(|r| r.matches_header(request.api_key, request.api_version, request.client_id))
    };
    if request.topics.is_empty() {
        return applicable().next().is_some();
    }
    request
        .topics
        .iter()
        .all(|topic| applicable().any(|r| r.covers_topic(topic)))
}

fn key_bit(key: ApiKey) -> u64 {
    u32::try_from(key.0)
        .ok()
        .and_then(|n| 1u64.checked_shl(n))
        .unwrap_or(0)
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role: &str, api_key: &str, api_version: &str, topic: &str) -> KafkaRuleSpec {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        KafkaRuleSpec {
            role: s(role),
            api_key: s(api_key),
            api_version: s(api_version),
            client_id: None,
            topic: s(topic),
        }
    }

    /// spec §13 table of names and numbers; Cilium pkg/policy/api/kafka APIKeyMap.
    #[test]
    fn api_key_names_round_trip() {
        let cases = [
            ("produce", 0),
            ("Produce", 0),
            ("FETCH", 1),
            ("metadata", 3),
            ("offsetcommit", 8),
            ("apiversions", 18),
            ("createtopics", 19),
            ("alterconfigs", 33),
        ];
        for (name, number) in cases {
            assert_eq!(ApiKey::from_name(name), Some(ApiKey(number)), "{name}");
            assert_eq!(
                ApiKey(number).name(),
                Some(name.to_ascii_lowercase().as_str())
            );
        }
        assert_eq!(ApiKey::from_name("createtopic"), None);
        assert_eq!(ApiKey(34).name(), None);
        assert_eq!(ApiKey(34).to_string(), "34");
        assert_eq!(ApiKey(-1).name(), None);
        assert_eq!(ApiKey(3).to_string(), "metadata");
    }

    /// spec §13: role key sets.
    #[test]
    fn roles_expand_to_key_sets() {
        let keys = |r: Role| r.api_keys().iter().map(|k| k.0).collect::<Vec<_>>();
        assert_eq!(keys(Role::Produce), vec![0, 3, 18]);
        assert_eq!(
            keys(Role::Consume),
            vec![1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18]
        );
        assert_eq!(Role::parse("CONSUME"), Some(Role::Consume));
        assert_eq!(Role::parse("admin"), None);
    }

    /// Cilium pkg/policy/api/kafka/kafka.go PortRule.Sanitize messages (Go %q quoting).
    #[test]
    fn compile_errors_use_cilium_messages() {
        let long = "t".repeat(256);
        let cases: Vec<(KafkaRuleSpec, Vec<(KafkaRuleField, &str)>)> = vec![
            (
                spec("produce", "fetch", "", ""),
                vec![(
                    KafkaRuleField::ApiKey,
                    r#"cannot set both Role "produce" and APIKey "fetch" together"#,
                )],
            ),
            (
                spec("", "createtopic", "", ""),
                vec![(
                    KafkaRuleField::ApiKey,
                    r#"invalid Kafka APIKey "createtopic""#,
                )],
            ),
            (
                spec("admin", "", "", ""),
                vec![(KafkaRuleField::Role, r#"invalid Kafka Role "admin""#)],
            ),
            (
                spec("", "", "-1", ""),
                vec![(
                    KafkaRuleField::ApiVersion,
                    r#"invalid Kafka APIVersion "-1""#,
                )],
            ),
            (
                spec("", "", "32768", ""),
                vec![(
                    KafkaRuleField::ApiVersion,
                    r#"invalid Kafka APIVersion "32768""#,
                )],
            ),
            (
                spec("", "", "v1", ""),
                vec![(
                    KafkaRuleField::ApiVersion,
                    r#"invalid Kafka APIVersion "v1""#,
                )],
            ),
            (
                spec("", "", "", "my topic"),
                vec![(
                    KafkaRuleField::Topic,
                    r#"invalid Kafka Topic name "my topic""#,
                )],
            ),
            (
                spec("", "", "", &long),
                vec![(
                    KafkaRuleField::Topic,
                    "kafka topic exceeds maximum len of 255",
                )],
            ),
            (
                spec("admin", "nope", "x", ""),
                vec![
                    (
                        KafkaRuleField::ApiKey,
                        r#"cannot set both Role "admin" and APIKey "nope" together"#,
                    ),
                    (KafkaRuleField::ApiKey, r#"invalid Kafka APIKey "nope""#),
                    (KafkaRuleField::Role, r#"invalid Kafka Role "admin""#),
                    (
                        KafkaRuleField::ApiVersion,
                        r#"invalid Kafka APIVersion "x""#,
                    ),
                ],
            ),
        ];
        for (input, want) in cases {
            let got: Vec<(KafkaRuleField, String)> = KafkaRule::compile(&input)
                .err()
                .unwrap_or_default()
                .iter()
                .map(|e| (e.field(), e.to_string()))
                .collect();
            let want: Vec<(KafkaRuleField, String)> =
                want.into_iter().map(|(f, m)| (f, m.to_owned())).collect();
            assert_eq!(got, want, "{input:?}");
        }
        for ok in [
            spec("Produce", "", "0", "orders.v1_x-y"),
            spec("", "Metadata", "32767", ""),
            spec("", "", "", &"t".repeat(255)),
            KafkaRuleSpec::default(),
        ] {
            assert!(KafkaRule::compile(&ok).is_ok(), "{ok:?}");
        }
    }

    fn rule(s: KafkaRuleSpec) -> KafkaRule {
        match KafkaRule::compile(&s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should compile: {e:?}"),
        }
    }

    fn request<'a>(api_key: i16, topics: &'a [&'a str]) -> KafkaRequest<'a> {
        KafkaRequest {
            api_key: ApiKey(api_key),
            api_version: 5,
            client_id: Some("app"),
            topics,
        }
    }

    /// spec §13 matching; cilium/proxy proxylib kafkalib policy_test.go TestProduceRequest
    /// (empty rules match nothing, `[{}]` matches everything).
    #[test]
    fn allows_follows_spec() {
        let none: &[KafkaRule] = &[];
        assert!(
            !allows(none, &request(0, &["foo"])),
            "empty rule list denies"
        );
        let wildcard = [rule(KafkaRuleSpec::default())];
        assert!(
            allows(&wildcard, &request(0, &["foo", "bar"])),
            "[{{}}] allows all"
        );
        assert!(
            allows(&wildcard, &request(57, &[])),
            "[{{}}] allows unnamed keys"
        );

        let produce_foo = rule(spec("produce", "", "", "foo"));
        let produce_bar = rule(spec("produce", "", "", "bar"));
        assert!(allows(
            std::slice::from_ref(&produce_foo),
            &request(0, &["foo"])
        ));
        assert!(
            !allows(
                std::slice::from_ref(&produce_foo),
                &request(0, &["foo", "bar"])
            ),
            "every topic must be allowed"
        );
        assert!(
            allows(
                &[produce_foo.clone(), produce_bar],
                &request(0, &["foo", "bar"])
            ),
            "entries are ORed per topic"
        );
        assert!(
            !allows(std::slice::from_ref(&produce_foo), &request(1, &["foo"])),
            "fetch is not produce"
        );
        assert!(
            allows(&[produce_foo], &request(18, &[])),
            "ApiVersions is part of produce and has no topics"
        );

        let v3 = rule(spec("", "fetch", "3", ""));
        assert!(
            !allows(std::slice::from_ref(&v3), &request(1, &["x"])),
            "version must equal"
        );
        let mut v5 = request(1, &["x"]);
        v5.api_version = 3;
        assert!(allows(&[v3], &v5));

        let client = rule(KafkaRuleSpec {
            client_id: Some("other".into()),
            ..KafkaRuleSpec::default()
        });
        assert!(
            !allows(&[client], &request(0, &["foo"])),
            "client ID must equal"
        );
    }

    #[test]
    fn topic_bearing_keys() {
        assert!(ApiKey::PRODUCE.has_topics());
        assert!(ApiKey(37).has_topics());
        assert!(!ApiKey::HEARTBEAT.has_topics());
        assert!(!ApiKey::API_VERSIONS.has_topics());
    }
}
