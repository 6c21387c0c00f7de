#![allow(clippy::unwrap_used)]

use super::*;

const T0: UnixMillis = UnixMillis(1_700_000_000_000);

fn at(seconds: u64) -> UnixMillis {
    T0.saturating_add(Duration::from_secs(seconds))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn answer(ips: &[(&str, u32)]) -> Vec<ResolvedIp> {
    ips.iter()
        .map(|(a, ttl)| ResolvedIp {
            addr: ip(a),
            ttl: *ttl,
        })
        .collect()
}

fn cache(min_ttl: u32, max_ips_per_name: usize) -> FqdnCache {
    FqdnCache::new(CacheLimits {
        min_ttl,
        max_ips_per_name,
    })
}

fn names(c: &FqdnCache, addr: &str) -> Vec<String> {
    c.names_of(ip(addr)).map(str::to_owned).collect()
}

#[test]
fn an_entry_lives_for_the_larger_of_its_ttl_and_the_floor() {
    // spec §14: "TTL = the smallest TTL in the chain, raised to tofqdns-min-ttl when
    // lower"; a TTL of 0 still lasts MIN_LIFETIME (1 s).
    let cases = [
        // (answer TTL, min TTL, seconds the entry lives)
        (300, 0, 300),
        (5, 60, 60),
        (120, 60, 120),
        (0, 0, 1),
        (0, 3600, 3600),
    ];
    for (ttl, min_ttl, lives) in cases {
        let mut c = cache(min_ttl, 1000);
        c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.1", ttl)]), T0);
        assert_eq!(c.next_expiry(), Some(at(lives)), "ttl {ttl}, min {min_ttl}");
        assert!(
            c.expire(at(lives)).contains(&ip("192.0.2.1")),
            "ttl {ttl}, min {min_ttl}: gone at {lives} s"
        );
        let mut c = cache(min_ttl, 1000);
        c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.1", ttl)]), T0);
        let just_before = UnixMillis(at(lives).0 - 1);
        assert!(c.expire(just_before).is_empty(), "ttl {ttl}, min {min_ttl}");
        assert_eq!(names(&c, "192.0.2.1"), ["a.test."]);
    }
}

#[test]
fn every_name_of_a_cname_chain_gets_the_addresses() {
    // spec §14: "CNAME chains are followed; every name in the chain maps to the final IPs".
    let mut c = cache(0, 1000);
    let changed = c.learn(
        "shop/web",
        &["www.example.test.", "edge.cdn.test."],
        &answer(&[("192.0.2.7", 60), ("192.0.2.8", 60)]),
        T0,
    );
    assert_eq!(changed, BTreeSet::from([ip("192.0.2.7"), ip("192.0.2.8")]));
    assert_eq!(
        names(&c, "192.0.2.7"),
        ["edge.cdn.test.", "www.example.test."]
    );
    assert_eq!(c.len(), 4);
}

#[test]
fn an_address_of_several_names_keeps_each_lifetime() {
    let mut c = cache(0, 1000);
    c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.1", 10)]), T0);
    c.learn("shop/web", &["b.test."], &answer(&[("192.0.2.1", 100)]), T0);
    // Another endpoint learning the same name keeps it alive on its own terms.
    c.learn("shop/api", &["a.test."], &answer(&[("192.0.2.1", 50)]), T0);
    assert_eq!(names(&c, "192.0.2.1"), ["a.test.", "b.test."]);

    // shop/web's a.test expires: a.test is still held by shop/api, nothing changes.
    assert!(c.expire(at(10)).contains(&ip("192.0.2.1")));
    assert_eq!(names(&c, "192.0.2.1"), ["a.test.", "b.test."]);
    // shop/api's a.test expires: the address loses that name, keeps b.test.
    c.expire(at(50));
    assert_eq!(names(&c, "192.0.2.1"), ["b.test."]);
    // The last name goes: the address is gone.
    c.expire(at(100));
    assert!(names(&c, "192.0.2.1").is_empty());
    assert_eq!(c.ips().count(), 0);
    assert!(c.is_empty());
}

#[test]
fn a_new_answer_refreshes_but_never_shortens() {
    let mut c = cache(0, 1000);
    c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.1", 100)]), T0);
    // A shorter TTL later: the workload may still use the first answer until its end.
    let changed = c.learn(
        "shop/web",
        &["a.test."],
        &answer(&[("192.0.2.1", 5)]),
        at(10),
    );
    assert!(changed.is_empty(), "no new name: {changed:?}");
    assert_eq!(c.next_expiry(), Some(at(100)));
    // A longer one later moves the end.
    c.learn(
        "shop/web",
        &["a.test."],
        &answer(&[("192.0.2.1", 100)]),
        at(50),
    );
    assert_eq!(c.next_expiry(), Some(at(150)));
    assert_eq!(c.len(), 1);
}

#[test]
fn over_the_per_name_cap_the_entries_closest_to_expiry_go() {
    // Cilium pkg/fqdn/cache.go cleanupOverLimitEntries: sorted by expiration time, the
    // earliest removed, per endpoint and name.
    let mut c = cache(0, 2);
    c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.1", 30)]), T0);
    c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.2", 60)]), T0);
    let changed = c.learn("shop/web", &["a.test."], &answer(&[("192.0.2.3", 45)]), T0);
    assert_eq!(changed, BTreeSet::from([ip("192.0.2.1"), ip("192.0.2.3")]));
    assert!(names(&c, "192.0.2.1").is_empty());
    assert_eq!(names(&c, "192.0.2.2"), ["a.test."]);
    assert_eq!(names(&c, "192.0.2.3"), ["a.test."]);
    // The cap is per endpoint and name: another endpoint, another name are apart.
    c.learn("shop/api", &["a.test."], &answer(&[("192.0.2.1", 30)]), T0);
    c.learn("shop/web", &["b.test."], &answer(&[("192.0.2.1", 30)]), T0);
    assert_eq!(names(&c, "192.0.2.1"), ["a.test.", "b.test."]);
    assert_eq!(c.len(), 4);
    // An answer bigger than the cap keeps the longest-lived of its own addresses.
    let mut c = cache(0, 1);
    c.learn(
        "shop/web",
        &["many.test."],
        &answer(&[("192.0.2.1", 10), ("192.0.2.2", 20)]),
        T0,
    );
    assert_eq!(c.ips().collect::<Vec<_>>(), [ip("192.0.2.2")]);
}

#[test]
fn restored_entries_keep_their_expiry_and_expired_ones_are_dropped() {
    let lookup = |name: &str, expires: UnixMillis| Lookup {
        endpoint: "shop/web".into(),
        name: name.into(),
        ip: ip("192.0.2.9"),
        ttl: 60,
        learned: T0,
        expires,
        source: Source::Lookup,
    };
    let mut c = cache(0, 1000);
    assert!(c.restore(&lookup("a.test.", at(60)), at(30)));
    assert!(!c.restore(&lookup("b.test.", at(20)), at(30)), "expired");
    let restored: Vec<Lookup> = c.lookups().collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].source, Source::Restored);
    assert_eq!(restored[0].expires, at(60));
    // A lookup of this run refreshes it and makes it the lookup's.
    c.learn(
        "shop/web",
        &["a.test."],
        &answer(&[("192.0.2.9", 100)]),
        at(30),
    );
    let refreshed: Vec<Lookup> = c.lookups().collect();
    assert_eq!(refreshed[0].source, Source::Lookup);
    assert_eq!(refreshed[0].expires, at(130));
}

#[test]
fn expiry_survives_a_round_trip_through_lookups() {
    let mut c = cache(30, 1000);
    c.learn(
        "shop/web",
        &["a.test.", "b.test."],
        &answer(&[("192.0.2.1", 5), ("2001:db8::1", 90)]),
        T0,
    );
    let mut copy = cache(30, 1000);
    for l in c.lookups() {
        copy.restore(&l, at(1));
    }
    let strip = |c: &FqdnCache| -> Vec<(String, String, IpAddr, UnixMillis)> {
        c.lookups()
            .map(|l| (l.endpoint, l.name, l.ip, l.expires))
            .collect()
    };
    assert_eq!(strip(&copy), strip(&c));
}

#[test]
fn unix_millis_arithmetic_saturates() {
    assert_eq!(
        UnixMillis(u64::MAX).saturating_add(Duration::from_secs(1)),
        UnixMillis(u64::MAX)
    );
    assert_eq!(at(10).saturating_since(at(20)), Duration::ZERO);
    assert_eq!(at(20).saturating_since(at(10)), Duration::from_secs(10));
}
