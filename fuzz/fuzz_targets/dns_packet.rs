//! Any bytes through the DNS proxy's parse and validate path: as a query from a workload,
//! and as an upstream answer to a query for `www.example.` A. Errors are fine; panics,
//! hangs and unbounded memory are the bugs. Invariants checked along the way: a valid
//! query's refusal is a valid answer to it, and every rejected packet that deserves an
//! answer gets one no larger than itself.
//!
//! The seed corpus is corpus/dns_packet/; dns-proxy/tests/fuzz_corpus.rs runs it mutated in
//! the normal test suite.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_dns::ResponseCode;
use sluice_dns::wire::{header_reply, parse_answer, parse_query, synthesize};

fuzz_target!(|data: &[u8]| {
    match parse_query(data) {
        Ok(query) => {
            let refusal = synthesize(&query, ResponseCode::Refused);
            let answer = parse_answer(&refusal, &query).expect("a refusal answers its query");
            assert_eq!(answer.rcode, ResponseCode::Refused);
            let _ = parse_answer(data, &query);
        }
        Err(error) => {
            if let Some(rcode) = error.reply_rcode() {
                let reply = header_reply(data, rcode).expect("an answered packet has a header");
                assert!(reply.len() <= data.len());
            }
        }
    }
    // As an answer: to a query with the packet's own ID, so the ID check lets it through.
    let id = data.get(..2).unwrap_or(&[0, 0]);
    let mut query = vec![id[0], id.get(1).copied().unwrap_or(0), 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
    if let Ok(query) = parse_query(&query) {
        let _ = parse_answer(data, &query);
    }
});
