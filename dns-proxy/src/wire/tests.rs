//! Queries and answers, well-formed and hostile, through the pure wire functions. Every
//! hostile case must end in a clear error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;

const ID: u16 = 0xbeef;

/// Case kept (`Name::from_str` would lowercase through IDNA).
fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn query_message(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(ID, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    m
}

fn query_bytes(qname: &str, qtype: RecordType) -> Vec<u8> {
    query_message(qname, qtype).to_vec().unwrap()
}

fn query(qname: &str, qtype: RecordType) -> DnsQuery {
    parse_query(&query_bytes(qname, qtype)).unwrap()
}

fn answer_message(q: &DnsQuery, records: Vec<Record>) -> Message {
    let mut m = Message::new(q.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(q.question.clone());
    for r in records {
        m.add_answer(r);
    }
    m
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn cname(owner: &str, ttl: u32, target: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

fn ip(addr: [u8; 4], ttl: u32) -> ResolvedIp {
    ResolvedIp {
        addr: IpAddr::V4(Ipv4Addr::from(addr)),
        ttl,
    }
}

/// A header with the given flag bytes and counts, then `body`.
fn raw(flags: [u8; 2], counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut p = ID.to_be_bytes().to_vec();
    p.extend_from_slice(&flags);
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(body);
    p
}

/// `name` (wire bytes) A IN.
fn question(wire_name: &[u8]) -> Vec<u8> {
    let mut q = wire_name.to_vec();
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

// ---- queries: the good ones ----

#[test]
fn query_keeps_the_question_as_sent_and_canonicalises_for_policy() {
    let q = query("WwW.CiLiUm.Io.", RecordType::AAAA);
    assert_eq!(q.id, ID);
    assert_eq!(q.qname, "www.cilium.io.");
    assert_eq!(q.qtype(), RecordType::AAAA);
    assert_eq!(q.question.name().to_ascii(), "WwW.CiLiUm.Io.");
    assert!(q.recursion_desired);
    assert_eq!(q.edns, None);
}

#[test]
fn query_with_edns_records_payload_and_do_bit() {
    let mut m = query_message("cilium.io.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    edns.set_dnssec_ok(true);
    m.set_edns(edns);
    let q = parse_query(&m.to_vec().unwrap()).unwrap();
    assert_eq!(
        q.edns,
        Some(QueryEdns {
            udp_payload: 4096,
            dnssec_ok: true
        })
    );
}

#[test]
fn root_query_is_the_root() {
    assert_eq!(query(".", RecordType::NS).qname, ".");
}

// ---- queries: the hostile ones ----

#[test]
fn packets_shorter_than_a_header_get_no_reply() {
    let full = query_bytes("cilium.io.", RecordType::A);
    for len in 0..HEADER_LEN {
        let err = parse_query(&full[..len]).unwrap_err();
        assert_eq!(err, QueryError::TooShort { len });
        assert_eq!(err.reply_rcode(), None);
    }
}

#[test]
fn responses_are_ignored() {
    let mut m = query_message("cilium.io.", RecordType::A);
    m.metadata.message_type = MessageType::Response;
    let err = parse_query(&m.to_vec().unwrap()).unwrap_err();
    assert_eq!(err, QueryError::NotAQuery);
    assert_eq!(err.reply_rcode(), None);
}

#[test]
fn other_opcodes_get_notimp() {
    for (op, code) in [
        (OpCode::Notify, 4),
        (OpCode::Update, 5),
        (OpCode::Status, 2),
    ] {
        let mut m = query_message("cilium.io.", RecordType::A);
        m.metadata.op_code = op;
        let err = parse_query(&m.to_vec().unwrap()).unwrap_err();
        assert_eq!(err, QueryError::UnsupportedOpcode(code));
        assert_eq!(err.reply_rcode(), Some(ResponseCode::NotImp));
    }
}

#[test]
fn anything_but_one_question_gets_formerr() {
    let mut two = query_message("a.cilium.io.", RecordType::A);
    two.add_query(Query::query(name("b.cilium.io."), RecordType::A));
    let err = parse_query(&two.to_vec().unwrap()).unwrap_err();
    assert_eq!(err, QueryError::QuestionCount(2));
    assert_eq!(err.reply_rcode(), Some(ResponseCode::FormErr));

    let none = Message::new(ID, MessageType::Query, OpCode::Query);
    assert_eq!(
        parse_query(&none.to_vec().unwrap()).unwrap_err(),
        QueryError::QuestionCount(0)
    );
}

#[test]
fn huge_counts_are_refused_before_reading_records() {
    let body = question(b"\x01a\x00");
    let cases = [
        ([0xffff, 0, 0, 0], QueryError::QuestionCount(0xffff)),
        (
            [1, 1, 0, 0],
            QueryError::TooManyRecords {
                section: Section::Answer,
                count: 1,
                max: 0,
            },
        ),
        (
            [1, 0, 2, 0],
            QueryError::TooManyRecords {
                section: Section::Authority,
                count: 2,
                max: MAX_QUERY_AUTHORITIES,
            },
        ),
        (
            [1, 0, 0, 0xffff],
            QueryError::TooManyRecords {
                section: Section::Additional,
                count: 0xffff,
                max: MAX_QUERY_ADDITIONALS,
            },
        ),
    ];
    for (counts, want) in cases {
        let err = parse_query(&raw([0x01, 0], counts, &body)).unwrap_err();
        assert_eq!(err, want, "{counts:?}");
        assert_eq!(err.reply_rcode(), Some(ResponseCode::FormErr));
    }
}

#[test]
fn announced_records_that_are_missing_get_formerr() {
    let err = parse_query(&raw([0x01, 0], [1, 0, 0, 2], &question(b"\x01a\x00"))).unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Record {
                section: Section::Additional,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_questions_get_formerr() {
    let full = query_bytes("www.cilium.io.", RecordType::A);
    for len in HEADER_LEN..full.len() {
        let err = parse_query(&full[..len]).unwrap_err();
        assert!(matches!(err, QueryError::Question(_)), "{len}: {err}");
        assert_eq!(err.reply_rcode(), Some(ResponseCode::FormErr));
    }
}

#[test]
fn compression_pointer_loops_get_formerr() {
    // The question's name points at itself, then at the byte after the pointer.
    for body in [
        &[0xc0, 12][..],
        &[0xc0, 14, 0][..],
        &[0x01, b'a', 0xc0, 12][..],
    ] {
        let err = parse_query(&raw([0x01, 0], [1, 0, 0, 0], &question(body))).unwrap_err();
        assert!(matches!(err, QueryError::Question(_)), "{body:?}: {err}");
    }
}

#[test]
fn pointer_into_the_header_is_read_as_hickory_reads_it() {
    // A pointer to offset 0: the ID (0xbeef) is read as a label length (0xbe: reserved).
    let err = parse_query(&raw([0x01, 0], [1, 0, 0, 0], &question(&[0xc0, 0]))).unwrap_err();
    assert!(matches!(err, QueryError::Question(_)), "{err}");
}

#[test]
fn labels_over_63_bytes_get_formerr() {
    // Length bytes 64..=191 are the reserved label types 01 and 10.
    for len_byte in [64u8, 0x7f, 0x80, 0xbf] {
        let mut name = vec![len_byte];
        name.extend(std::iter::repeat_n(b'a', usize::from(len_byte & 0x3f)));
        name.push(0);
        let err = parse_query(&raw([0x01, 0], [1, 0, 0, 0], &question(&name))).unwrap_err();
        assert!(matches!(err, QueryError::Question(_)), "{len_byte}: {err}");
    }
}

#[test]
fn names_over_255_bytes_get_formerr() {
    // Four 63-byte labels: 4 × 64 + 1 = 257 bytes on the wire.
    let mut name = Vec::new();
    for _ in 0..4 {
        name.push(63);
        name.extend([b'a'; 63]);
    }
    name.push(0);
    let err = parse_query(&raw([0x01, 0], [1, 0, 0, 0], &question(&name))).unwrap_err();
    assert!(matches!(err, QueryError::Question(_)), "{err}");

    // 255 bytes on the wire is the limit, and fine.
    let mut name = Vec::new();
    for _ in 0..3 {
        name.push(63);
        name.extend([b'a'; 63]);
    }
    name.push(61);
    name.extend([b'a'; 61]);
    name.push(0);
    assert_eq!(name.len(), 255);
    parse_query(&raw([0x01, 0], [1, 0, 0, 0], &question(&name))).unwrap();
}

#[test]
fn two_opt_records_get_formerr() {
    let opt = [0u8, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    let mut body = question(b"\x01a\x00");
    body.extend_from_slice(&opt);
    body.extend_from_slice(&opt);
    let err = parse_query(&raw([0x01, 0], [1, 0, 0, 2], &body)).unwrap_err();
    assert_eq!(err, QueryError::DuplicateOpt);
}

#[test]
fn trailing_bytes_get_formerr() {
    let mut p = query_bytes("cilium.io.", RecordType::A);
    p.extend_from_slice(b"junk");
    assert_eq!(parse_query(&p).unwrap_err(), QueryError::TrailingBytes(4));
}

#[test]
fn escaped_bytes_reach_policy_escaped() {
    let p = raw(
        [0x01, 0],
        [1, 0, 0, 0],
        &question(b"\x03a.b\x03a b\x02io\x00"),
    );
    assert_eq!(parse_query(&p).unwrap().qname, "a\\.b.a\\032b.io.");
}

// ---- the proxy's own answers ----

#[test]
fn synthesised_refusal_echoes_id_question_and_flags() {
    let q = query("WwW.CiLiUm.Io.", RecordType::A);
    let bytes = synthesize(&q, ResponseCode::Refused);
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, ID);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "WwW.CiLiUm.Io.");
    assert!(m.answers.is_empty() && m.edns.is_none());
}

#[test]
fn synthesised_answer_carries_opt_when_the_query_did() {
    let mut m = query_message("cilium.io.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    m.set_edns(edns);
    let q = parse_query(&m.to_vec().unwrap()).unwrap();
    let reply = Message::from_vec(&synthesize(&q, ResponseCode::NXDomain)).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    let opt = reply.edns.unwrap();
    assert_eq!(opt.max_payload(), REPLY_UDP_PAYLOAD);
    assert!(opt.flags().dnssec_ok);
}

#[test]
fn header_reply_echoes_id_opcode_and_rd() {
    let mut m = query_message("cilium.io.", RecordType::A);
    m.metadata.op_code = OpCode::Update;
    let p = m.to_vec().unwrap();
    let reply = header_reply(&p, ResponseCode::NotImp).unwrap();
    assert!(reply.len() <= p.len());
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, ID);
    assert_eq!(m.metadata.op_code, OpCode::Update);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert!(m.metadata.recursion_desired);
    assert!(m.queries.is_empty());
    assert_eq!(header_reply(&p[..11], ResponseCode::FormErr), None);
}

// ---- answers ----

#[test]
fn a_answer_teaches_its_addresses_with_their_ttls() {
    let q = query("cilium.io.", RecordType::A);
    let m = answer_message(
        &q,
        vec![
            a("cilium.io.", 60, [192, 0, 2, 1]),
            a("cilium.io.", 30, [192, 0, 2, 2]),
        ],
    );
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(!ans.truncated);
    assert_eq!(
        ans.ips,
        vec![ip([192, 0, 2, 1], 60), ip([192, 0, 2, 2], 30)]
    );
    assert!(ans.cnames.is_empty());
}

#[test]
fn aaaa_answer() {
    let q = query("cilium.io.", RecordType::AAAA);
    let v6 = Ipv6Addr::from_str("2001:db8::1").unwrap();
    let m = answer_message(
        &q,
        vec![Record::from_rdata(
            name("cilium.io."),
            120,
            RData::AAAA(AAAA(v6)),
        )],
    );
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(
        ans.ips,
        vec![ResolvedIp {
            addr: IpAddr::V6(v6),
            ttl: 120
        }]
    );
}

/// spec §14: CNAME chains are followed; the TTL is the smallest along the chain.
#[test]
fn cname_chain_is_followed_in_any_order() {
    let q = query("WWW.cilium.io.", RecordType::A);
    let m = answer_message(
        &q,
        vec![
            a("edge.cdn.example.", 300, [198, 51, 100, 7]),
            cname("lb.cilium.io.", 40, "edge.cdn.example."),
            cname("www.cilium.io.", 3600, "LB.cilium.io."),
        ],
    );
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.cnames, vec!["lb.cilium.io.", "edge.cdn.example."]);
    assert_eq!(ans.ips, vec![ip([198, 51, 100, 7], 40)]);
}

#[test]
fn cname_loop_ends_and_teaches_nothing() {
    let q = query("a.example.", RecordType::A);
    let m = answer_message(
        &q,
        vec![
            cname("a.example.", 5, "b.example."),
            cname("b.example.", 5, "a.example."),
        ],
    );
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.cnames, vec!["b.example."]);
    assert!(ans.ips.is_empty());
}

#[test]
fn records_off_the_chain_and_other_classes_teach_nothing() {
    let q = query("cilium.io.", RecordType::A);
    let mut chaos = a("cilium.io.", 5, [192, 0, 2, 9]);
    chaos.dns_class = DNSClass::CH;
    let m = answer_message(
        &q,
        vec![
            a("evil.example.", 5, [203, 0, 113, 1]),
            chaos,
            a("cilium.io.", 5, [192, 0, 2, 1]),
            a("cilium.io.", 9, [192, 0, 2, 1]),
        ],
    );
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.ips, vec![ip([192, 0, 2, 1], 5)]);
}

#[test]
fn only_noerror_teaches() {
    let q = query("cilium.io.", RecordType::A);
    let mut m = answer_message(&q, vec![a("cilium.io.", 5, [192, 0, 2, 1])]);
    m.metadata.response_code = ResponseCode::NXDomain;
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.rcode, ResponseCode::NXDomain);
    assert!(ans.ips.is_empty());
}

#[test]
fn error_answer_without_question_is_accepted() {
    let q = query("cilium.io.", RecordType::A);
    let m = Message::error_msg(ID, OpCode::Query, ResponseCode::Refused);
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert_eq!(ans.rcode, ResponseCode::Refused);
    // …but a NOERROR one without the question answers nothing we asked.
    let m = Message::response(ID, OpCode::Query);
    assert!(
        parse_answer(&m.to_vec().unwrap(), &q)
            .unwrap_err()
            .is_mismatch()
    );
}

#[test]
fn extended_rcode_comes_from_opt() {
    let q = query("cilium.io.", RecordType::A);
    let mut m = answer_message(&q, vec![]);
    m.metadata.response_code = ResponseCode::BADVERS;
    m.set_edns(Edns::new());
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    // 16 is both BADVERS and BADSIG; hickory names it the latter.
    assert_eq!(u16::from(ans.rcode), 16);
}

#[test]
fn answers_to_something_else_are_mismatches() {
    let q = query("cilium.io.", RecordType::A);
    let good = answer_message(&q, vec![a("cilium.io.", 5, [192, 0, 2, 1])]);

    let mut other_id = good.clone();
    other_id.metadata.id = ID ^ 1;
    let mut not_response = good.clone();
    not_response.metadata.message_type = MessageType::Query;
    let other_name = answer_message(&query("cilium.org.", RecordType::A), vec![]);
    let other_type = answer_message(&query("cilium.io.", RecordType::AAAA), vec![]);
    for (what, m) in [
        ("other ID", other_id),
        ("not a response", not_response),
        ("other name", other_name),
        ("other type", other_type),
    ] {
        let err = parse_answer(&m.to_vec().unwrap(), &q).unwrap_err();
        assert!(err.is_mismatch(), "{what}: {err}");
    }
    assert!(parse_answer(&[0; 5], &q).unwrap_err().is_mismatch());

    // The question's case may differ (a resolver that does not echo 0x20 case).
    let upper = answer_message(&query("CILIUM.IO.", RecordType::A), vec![]);
    parse_answer(&upper.to_vec().unwrap(), &q).unwrap();
}

#[test]
fn cut_answers_are_malformed_and_say_whether_tc_was_set() {
    let q = query("cilium.io.", RecordType::A);
    let mut m = answer_message(&q, vec![a("cilium.io.", 5, [192, 0, 2, 1]); 3]);
    let full = m.to_vec().unwrap();
    let cut = &full[..full.len() - 3];
    let err = parse_answer(cut, &q).unwrap_err();
    assert!(
        matches!(
            err,
            AnswerError::Malformed {
                truncated: false,
                ..
            }
        ) && !err.is_mismatch(),
        "{err}"
    );
    m.metadata.truncation = true;
    let full = m.to_vec().unwrap();
    let err = parse_answer(&full[..full.len() - 3], &q).unwrap_err();
    assert!(
        matches!(
            err,
            AnswerError::Malformed {
                truncated: true,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn tc_answer_with_whole_records_parses() {
    let q = query("cilium.io.", RecordType::A);
    let mut m = answer_message(&q, vec![]);
    m.metadata.truncation = true;
    let ans = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
    assert!(ans.truncated);
}

#[test]
fn address_records_of_the_wrong_length_are_malformed() {
    let q = query("a.", RecordType::A);
    let mut p = raw([0x81, 0x80], [1, 1, 0, 0], &question(b"\x01a\x00"));
    // owner: pointer to the question's name; A IN ttl 5; rdlength 5.
    p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 5, 1, 2, 3, 4, 5]);
    let err = parse_answer(&p, &q).unwrap_err();
    assert!(
        err.to_string().contains("A record data of 5 bytes"),
        "{err}"
    );
}

#[test]
fn pointer_chains_in_answers_are_bounded() {
    let q = query("a.", RecordType::A);
    let mut p = raw([0x81, 0x80], [1, 2, 0, 0], &question(b"\x01a\x00"));
    // Record 1, a TXT whose data (skipped, never read as names) is a chain of pointers,
    // each to the one before, the first to the question's name.
    let hops = MAX_POINTER_HOPS + 1;
    p.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 5]);
    p.extend_from_slice(&(2 * hops as u16).to_be_bytes());
    let mut target = 12u16;
    for _ in 0..hops {
        let at = p.len() as u16;
        p.extend_from_slice(&(0xc000 | target).to_be_bytes());
        target = at;
    }
    // Record 2, an A whose owner is a pointer to the end of that chain.
    p.extend_from_slice(&(0xc000 | target).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 1]);
    let err = parse_answer(&p, &q).unwrap_err();
    assert!(err.to_string().contains("compression pointers"), "{err}");
}
