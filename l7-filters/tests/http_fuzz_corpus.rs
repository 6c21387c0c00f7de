//! Hostile request heads, and deterministic mutations of them, through the normaliser and a
//! rule set: whatever the bytes, both answer and never panic, and normalisation is a fixed
//! point (a normalised path and host normalise to themselves).
//!
//! A cheap, always-on stand-in for `cargo fuzz run http_normalize` (see `fuzz/`), which
//! needs a nightly toolchain CI does not have. The input format is the fuzz target's: the
//! first byte picks method and version, the first line is the request-target, each further
//! line a `name: value` header.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use sluice_l7::http::{
    EscapedSlashAction, HeaderMatchSpec, HttpRule, HttpRuleSet, HttpRuleSpec, NormalizeConfig,
    RequestHead, RequestTarget, SecretRef, Transport, normalize,
};

/// Mutations per seed; a few thousand in all, well under a second in a debug build.
/// `SLUICE_FUZZ_MUTATIONS=100000` runs a longer hunt locally.
const MUTATIONS_PER_SEED: usize = 150;

/// Seeds: every byte 0 is the method/version selector.
const SEEDS: &[&[u8]] = &[
    b"\x00/api/v1/items?limit=5\nhost: api\n",
    b"\x00/public/../admin\nhost: www\n",
    b"\x00/public/%2e%2e/admin\nhost: www\n",
    b"\x00/public%2F..%2Fadmin\nhost: www\n",
    b"\x00/public/..%5cadmin\nhost: www\n",
    b"\x00/public/..;/admin\nhost: www\n",
    b"\x00//admin//x///y\nhost: www\n",
    b"\x00/a/%c0%ae/%7e%41\nhost: www\n",
    b"\x00/a#frag\nhost: www\n",
    b"\x01http://API:80/x?y\nhost: api\n",
    b"\x01https://[::1]:443/\nhost: [::1]\n",
    b"\x02api.example.com:443\nhost: api.example.com\n",
    b"\x03*\nhost: api\n",
    b"\x04/x\nhost: a\nhost: b\n",
    b"\x05/x\nhost: api\ncontent-length: 5\ntransfer-encoding: chunked\n",
    b"\x05/x\nhost: api\ncontent-length: 5\ncontent-length: 5, 6\n",
    b"\x05/x\nhost: api\ntransfer-encoding: gzip, chunked\n",
    b"\x06/grpc.Svc/Method\nte: trailers\ncontent-type: application/grpc\n",
    b"\x06/x\nconnection: close\n",
    b"\x00/x\nhost: api\nx-token: s3cret\nx-env: dev\nx-env: test\n",
    b"\x07get-me\nhost: api@evil\n",
];

/// Fragments that steer the normaliser into its corners.
const TOKENS: &[&[u8]] = &[
    b"/",
    b"//",
    b"/.",
    b"/..",
    b"/../",
    b"./",
    b"..;",
    b";",
    b"%",
    b"%2",
    b"%2e",
    b"%2E",
    b"%2f",
    b"%2F",
    b"%5c",
    b"%5C",
    b"%00",
    b"%c0",
    b"%25",
    b"%7e",
    b"\\",
    b"#",
    b"?",
    b"@",
    b":",
    b":80",
    b":443",
    b"[",
    b"]",
    b"[::1]",
    b".",
    b"\0",
    b"\r",
    b"\n",
    b"\t",
    b" ",
    b"\xff",
    b"\xc3\xa9",
    b"http://",
    b"https://",
    b"host: ",
    b"content-length: ",
    b"transfer-encoding: ",
    b"chunked",
    b"connection: ",
    b"te: ",
    b"x-token: ",
    b"*",
];

const METHODS: &[&str] = &[
    "GET", "POST", "CONNECT", "OPTIONS", "get", "HEAD", "PUT", "BREW",
];
const VERSIONS: &[Version] = &[
    Version::HTTP_11,
    Version::HTTP_10,
    Version::HTTP_2,
    Version::HTTP_09,
];

fn rule_set() -> HttpRuleSet {
    let hm =
        |name: &str, value: Option<&str>, secret: Option<&str>, mismatch: &str| HeaderMatchSpec {
            name: name.into(),
            value: value.map(str::to_owned),
            secret: secret.map(|n| SecretRef {
                namespace: None,
                name: n.into(),
            }),
            mismatch: Some(mismatch.into()),
        };
    let specs = [
        HttpRuleSpec {
            method: Some("GET|HEAD".into()),
            path: Some("/api/v1/items(/.*)?".into()),
            host: Some("api(:[0-9]+)?".into()),
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            path: Some("/public(/.*)?".into()),
            headers: vec!["X-Trace".into()],
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            method: Some("POST".into()),
            path: Some(r"/grpc\.Svc/.*".into()),
            header_matches: vec![
                hm("x-token", None, Some("token"), ""),
                hm("x-env", Some("prod"), None, "REPLACE"),
                hm("x-add", Some("1"), None, "ADD"),
                hm("x-del", Some("1"), None, "DELETE"),
                hm("x-log", None, None, "LOG"),
            ],
            ..HttpRuleSpec::default()
        },
        HttpRuleSpec {
            method: Some("CONNECT".into()),
            host: Some(r"[a-z.]+:443".into()),
            ..HttpRuleSpec::default()
        },
    ];
    let secrets = |s: &SecretRef| (s.name == "token").then(|| "s3cret".to_owned());
    let rules: Vec<HttpRule> = specs
        .iter()
        .map(|s| HttpRule::compile(s, &secrets).unwrap())
        .collect();
    HttpRuleSet::compile(&rules).unwrap()
}

/// Runs one input; panics only on a broken invariant.
fn exercise(set: &HttpRuleSet, input: &[u8]) {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let method =
        Method::from_bytes(METHODS[usize::from(selector) % METHODS.len()].as_bytes()).unwrap();
    let version = VERSIONS[usize::from(selector >> 4) % VERSIONS.len()];
    let mut lines = rest.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value[1..].trim_ascii_start();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let Ok(target) = RequestTarget::parse(target) else {
        return;
    };
    for config in configs() {
        let head = RequestHead {
            method: &method,
            target,
            version,
            headers: &headers,
        };
        let Ok(normal) = normalize(&head, &config) else {
            continue;
        };
        check_fixed_point(&head, &config, normal.path_and_query(), normal.host());
        let decision = set.evaluate(&normal.view());
        let mut forwarded = headers.clone();
        decision.apply_edits(&mut forwarded);
        let _ = decision.log().len();
    }
}

fn configs() -> [NormalizeConfig; 2] {
    [
        NormalizeConfig::default(),
        NormalizeConfig {
            escaped_slashes: EscapedSlashAction::UnescapeAndRedirect,
            transport: Transport::Tls,
            ..NormalizeConfig::default()
        },
    ]
}

/// A normalised path and host, sent again in the same form, come back unchanged.
fn check_fixed_point(
    head: &RequestHead<'_>,
    config: &NormalizeConfig,
    path: Option<&str>,
    host: Option<&str>,
) {
    let Some(path) = path.filter(|p| *p != "*") else {
        return;
    };
    let target = match (head.target, host) {
        (RequestTarget::Absolute { scheme, .. }, Some(host)) => RequestTarget::Absolute {
            scheme,
            authority: host,
            path_and_query: path,
        },
        (RequestTarget::Origin(_), _) => RequestTarget::Origin(path),
        _ => return,
    };
    // An empty Host is how a request names no host.
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(host.unwrap_or("")).unwrap());
    let again = RequestHead {
        method: head.method,
        target,
        version: head.version,
        headers: &headers,
    };
    match normalize(&again, config) {
        Ok(n) => {
            assert_eq!(n.path_and_query(), Some(path), "path is not a fixed point");
            assert_eq!(n.host(), host, "host is not a fixed point");
            assert!(!n.path_rewritten(), "{path}");
        }
        Err(e) => panic!("normalised {path:?} / {host:?} is refused: {e}"),
    }
}

/// xorshift64*: deterministic, so a failure reproduces from its seed number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(6) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 => input.truncate(rng.below(len + 1)),
        2 if len > 0 => {
            let start = rng.below(len);
            let end = start + rng.below((len - start).min(32) + 1);
            input.drain(start..end);
        }
        3 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        4 if !other.is_empty() => {
            // Splice a piece of another seed in.
            let start = rng.below(other.len());
            let end = start + rng.below(other.len() - start + 1);
            let at = rng.below(len + 1);
            input.splice(at..at, other[start..end].iter().copied());
        }
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next() as u8);
        }
    }
}

#[test]
fn seeds_and_mutations_never_panic() {
    let set = rule_set();
    let per_seed = std::env::var("SLUICE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTATIONS_PER_SEED);
    let mut runs = 0;
    for (n, seed) in SEEDS.iter().enumerate() {
        exercise(&set, seed);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1));
        let mut input = seed.to_vec();
        for m in 0..per_seed {
            let other = SEEDS[rng.below(SEEDS.len())];
            for _ in 0..=rng.below(4) {
                mutate(&mut rng, &mut input, other);
            }
            exercise(&set, &input);
            runs += 1;
            // Restart from the seed now and then so inputs stay near the interesting ones.
            if m % 16 == 15 {
                input = seed.to_vec();
            }
        }
    }
    assert!(runs >= 3000, "{runs}");
}

/// Long and deep inputs finish: the normaliser is linear and refuses what exceeds its
/// limits.
#[test]
fn pathological_inputs_finish() {
    let set = rule_set();
    let mut deep = vec![0u8];
    deep.extend(b"/..".repeat(3000));
    deep.extend(b"\nhost: api\n");
    exercise(&set, &deep);
    let mut slashes = vec![0u8];
    slashes.extend(b"/".repeat(8000));
    slashes.extend(b"\nhost: api\n");
    exercise(&set, &slashes);
    let mut escapes = vec![0u8, b'/'];
    escapes.extend(b"%41".repeat(2700));
    escapes.extend(b"\nhost: api\n");
    exercise(&set, &escapes);
}
