//! The `dns_packet` fuzz target's seed corpus, and deterministic mutations of it, through the
//! proxy's parse and validate path: whatever the bytes, it answers and never panics.
//!
//! A cheap, always-on stand-in for `cargo fuzz run dns_packet` (see `fuzz/`), which needs a
//! nightly toolchain CI does not have. The seeds are written by `regenerate_seed_corpus`
//! (`cargo test -p sluice-dns --test fuzz_corpus -- --ignored`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sluice_dns::wire::{header_reply, parse_answer, parse_query, synthesize};

/// Mutations per seed file; a few thousand in all. `SLUICE_FUZZ_MUTATIONS=100000` runs a
/// longer hunt locally.
const MUTATIONS_PER_SEED: usize = 400;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dns_packet")
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn message(id: u16, kind: MessageType, qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, kind, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = kind == MessageType::Response;
    m.add_query(Query::query(name(qname), qtype));
    m
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

/// Queries from workloads and answers from resolvers, each a different corner.
fn generated_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let response = |qname, qtype| message(0x1234, MessageType::Response, qname, qtype);
    let mut seeds = Vec::new();

    let mut q = message(0x1234, MessageType::Query, "www.example.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    q.set_edns(edns.clone());
    seeds.push(("query-a-edns.bin", q.to_vec().unwrap()));
    let q = message(0x4321, MessageType::Query, "WwW.ExAmPlE.", RecordType::AAAA);
    seeds.push(("query-aaaa-0x20.bin", q.to_vec().unwrap()));
    let mut q = message(0x1234, MessageType::Query, "a.example.", RecordType::A);
    q.add_query(Query::query(name("b.example."), RecordType::A));
    seeds.push(("query-two-questions.bin", q.to_vec().unwrap()));

    let mut m = response("www.example.", RecordType::A);
    m.add_answer(a("www.example.", [192, 0, 2, 1]));
    m.add_answer(a("www.example.", [192, 0, 2, 2]));
    seeds.push(("answer-a.bin", m.to_vec().unwrap()));

    let mut m = response("www.example.", RecordType::A);
    m.add_answer(Record::from_rdata(
        name("www.example."),
        300,
        RData::CNAME(CNAME(name("edge.cdn.example."))),
    ));
    m.add_answer(Record::from_rdata(
        name("edge.cdn.example."),
        30,
        RData::CNAME(CNAME(name("lb.cdn.example."))),
    ));
    m.add_answer(a("lb.cdn.example.", [198, 51, 100, 7]));
    m.add_answer(Record::from_rdata(
        name("lb.cdn.example."),
        60,
        RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7))),
    ));
    m.set_edns(edns);
    seeds.push(("answer-cname-chain.bin", m.to_vec().unwrap()));

    let mut m = response("www.example.", RecordType::A);
    m.metadata.truncation = true;
    for i in 0..8 {
        m.add_answer(a("www.example.", [10, 0, 0, i]));
    }
    let bytes = m.to_vec().unwrap();
    seeds.push((
        "answer-truncated-cut.bin",
        bytes[..bytes.len() - 5].to_vec(),
    ));

    let mut m = response("www.example.", RecordType::A);
    m.metadata.response_code = ResponseCode::NXDomain;
    m.add_authority(Record::from_rdata(
        name("example."),
        900,
        RData::SOA(SOA::new(
            name("ns.example."),
            name("hostmaster.example."),
            1,
            7200,
            900,
            1_209_600,
            86_400,
        )),
    ));
    seeds.push(("answer-nxdomain-soa.bin", m.to_vec().unwrap()));
    seeds
}

#[test]
#[ignore = "writes fuzz/corpus/dns_packet; run by hand when the seeds change"]
fn regenerate_seed_corpus() {
    let dir = corpus_dir();
    fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in generated_seeds() {
        fs::write(dir.join(file), bytes).unwrap();
    }
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir();
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "seed corpus too small: {}", seeds.len());
    seeds
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

/// Byte strings that steer a DNS parser into its corners: pointers (backward, to
/// themselves, to the header), reserved label types, long labels, counts, OPT records.
const TOKENS: &[&[u8]] = &[
    &[0xc0, 0x0c],
    &[0xc0, 0x00],
    &[0xc0, 0xff],
    &[0xff, 0xff],
    &[0x40],
    &[0x80],
    &[0x3f],
    &[0x00],
    &[0x00, 0x05],
    &[0x00, 0x29, 0x10, 0x00],
    &[0x00, 0x01, 0x00, 0x01],
    b"\x07example\x00",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 => input.truncate(rng.below(len + 1)),
        2 if len > 0 => {
            let start = rng.below(len);
            let end = start + rng.below(len - start + 1);
            let slice = input[start..end].to_vec();
            let at = rng.below(input.len() + 1);
            input.splice(at..at, slice);
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let end = start + rng.below((len - start).min(16) + 1);
            input.drain(start..end);
        }
        4 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        5 if len >= 12 => {
            // A header count (QD, AN, NS, AR) set to something else.
            let at = 4 + 2 * rng.below(4);
            let value = [0u16, 1, 2, 3, 0xffff][rng.below(5)];
            input[at..at + 2].copy_from_slice(&value.to_be_bytes());
        }
        6 if !other.is_empty() => {
            let start = rng.below(other.len());
            let end = start + rng.below(other.len() - start + 1);
            let at = rng.below(len + 1);
            input.splice(at..at, other[start..end].iter().copied());
        }
        _ if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        _ => input.push(0),
    }
}

/// Outcome counts, to check the mutations reach past the first check.
#[derive(Default)]
struct Reached {
    queries: usize,
    answers: usize,
}

/// The fuzz target's body, with its invariants.
fn check(packet: &[u8], reached: &mut Reached) {
    match parse_query(packet) {
        Ok(query) => {
            reached.queries += 1;
            let refusal = synthesize(&query, ResponseCode::Refused);
            let answer = parse_answer(&refusal, &query)
                .unwrap_or_else(|e| panic!("refusal of {packet:02x?} does not answer it: {e}"));
            assert_eq!(answer.rcode, ResponseCode::Refused);
            let _ = parse_answer(packet, &query);
        }
        Err(error) => {
            if let Some(rcode) = error.reply_rcode() {
                let reply = header_reply(packet, rcode)
                    .unwrap_or_else(|| panic!("{error} on {packet:02x?} deserves an answer"));
                assert!(reply.len() <= packet.len());
            }
        }
    }
    let id = packet.get(..2).unwrap_or(&[0, 0]);
    let mut query = vec![
        id[0],
        id.get(1).copied().unwrap_or(0),
        0x01,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    query.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
    let query = parse_query(&query).unwrap();
    if parse_answer(packet, &query).is_ok() {
        reached.answers += 1;
    }
}

#[test]
fn seeds_parse_as_what_they_are() {
    let query = parse_query(&generated_seeds()[0].1).unwrap();
    for (path, bytes) in seeds() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.starts_with("query-two") {
            assert!(parse_query(&bytes).is_err(), "{file}");
        } else if file.starts_with("query-") {
            parse_query(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        } else if file.contains("-cut") {
            assert!(parse_answer(&bytes, &query).is_err(), "{file}");
        } else {
            parse_answer(&bytes, &query).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let seeds = seeds();
    let mutations = std::env::var("SLUICE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS_PER_SEED);
    let mut rng = Rng(0xd115_eed5_0bad_f00d);
    let mut reached = Reached::default();
    for (i, (_, seed)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        for _ in 0..mutations {
            let mut input = seed.clone();
            for _ in 0..=rng.below(3) {
                mutate(&mut rng, &mut input, other);
            }
            check(&input, &mut reached);
        }
    }
    // Mutations that all fail at the header would test little past it. Most seeds are
    // answers, and a query takes no extra byte anywhere, so fewer mutations stay queries.
    let total = mutations * seeds.len();
    assert!(
        reached.queries * 50 > total,
        "only {} of {total} mutations parsed as queries",
        reached.queries
    );
    assert!(
        reached.answers * 20 > total,
        "only {} of {total} mutations parsed as answers",
        reached.answers
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut reached = Reached::default();
    for _ in 0..2000 {
        let len = rng.below(80);
        let packet: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&packet, &mut reached);
    }
}
