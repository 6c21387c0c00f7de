//! Input no one should write but someone will: huge, deep, self-multiplying, not
//! UTF-8, empty, tab-indented. Each is refused with a located message, quickly, and
//! without a panic or a stack overflow.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sluice_config::{Config, load, load_str};

/// Generous for a debug build on a shared 2-core machine; the real cost is milliseconds.
const QUICK: Duration = Duration::from_secs(2);

#[test]
fn a_ten_megabyte_file_is_refused_by_its_size_before_parsing() {
    let padding = "#".repeat(100) + "\n";
    let text = NAMESPACE_SHOP.to_owned() + &padding.repeat(10 * 1024 * 1024 / padding.len() + 1);
    let expected = format!(
        "big.yaml: (document): file is 10.0 MiB ({} bytes), over the 4 MiB limit for one \
         configuration file; split it into several files",
        text.len()
    );

    let start = Instant::now();
    assert_eq!(load_err("big.yaml", &text), std::slice::from_ref(&expected));
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());

    let dir = TempDir::new();
    let path = dir.write("big.yaml", &text);
    let start = Instant::now();
    let error = load(&[&path]).unwrap_err();
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    assert_eq!(
        lines(&error),
        [expected.replacen("big.yaml", &path.display().to_string(), 1)]
    );
}

#[test]
fn a_file_just_under_the_limit_is_read() {
    let padding = "#".repeat(99) + "\n";
    let body = padding.repeat((4 * 1024 * 1024 - NAMESPACE_SHOP.len()) / padding.len());
    let text = NAMESPACE_SHOP.to_owned() + &body;
    assert!(text.len() <= 4 * 1024 * 1024);
    assert_eq!(load_ok("big.yaml", &text).namespaces.len(), 1);
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused_without_overflowing_the_stack() {
    let cases = [
        (
            "flow",
            "a: ".to_owned() + &"[".repeat(10_000) + &"]".repeat(10_000),
        ),
        (
            "flow-map",
            "a: ".to_owned() + &"{b: ".repeat(10_000) + &"}".repeat(10_000),
        ),
        ("block", "- ".repeat(10_000) + "x\n"),
        // Block mappings need one more column per level; 100 levels make the point.
        (
            "block-map",
            (0..100)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
        ),
    ];
    for (name, text) in cases {
        let start = Instant::now();
        let errors = load_err("deep.yaml", &text);
        assert!(start.elapsed() < QUICK, "{name} took {:?}", start.elapsed());
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert!(
            errors[0].ends_with(": nesting is deeper than 64 levels of lists and mappings"),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn sixty_four_levels_are_fine() {
    let text = "[".repeat(64) + &"]".repeat(64);
    // Within the limit, the document is read and then refused for what it is.
    assert_eq!(
        load_err("deep.yaml", &text),
        ["deep.yaml:1:1: (document): expected a mapping with apiVersion and kind, found a list"]
    );
}

#[test]
fn billion_laughs_are_refused_at_the_alias_that_crosses_the_budget() {
    let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: lol}\n");
    text.push_str("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let aliases = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{aliases}]\n"));
    }
    let start = Instant::now();
    let errors = load_err("lol.yaml", &text);
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    // The anchors a0..a3 keep 12,344 nodes aside and their aliases copy 12,330 more;
    // a4's seventh alias of a3 (11,111 nodes) crosses 100,000.
    assert_eq!(
        errors,
        [
            "lol.yaml:8:40: a4[6]: aliases expand to more than 100000 nodes; write the values out \
          instead of nesting aliases"
        ]
    );
}

#[test]
fn nested_anchors_of_a_huge_value_are_refused_before_they_are_copied() {
    // No alias at all, but each anchor keeps a copy of the 60,000-item list aside.
    let items = vec!["x"; 60_000].join(", ");
    let text = format!("a: &outer [&inner [{items}]]\n");
    assert_eq!(
        load_err("big.yaml", &text),
        [
            "big.yaml:1:4: a: anchored values hold more than 100000 nodes in all; anchor only small \
          values such as selectors"
        ]
    );
}

#[test]
fn aliases_of_small_anchors_are_expanded() {
    let text = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: &api {matchLabels: {app: api}}
  ingress: [{fromEndpoints: [&web {matchLabels: {app: web}}]}]
- endpointSelector: *api
  egress: [{toEndpoints: [*web]}]
";
    let config = load_ok("p.yaml", text);
    let sluice_config::Policy::Cilium(p) = &config.policies[0].resource else {
        panic!("{:?}", config.diagnostics);
    };
    let specs = p.specs.as_ref().unwrap();
    assert_eq!(specs[0].endpoint_selector, specs[1].endpoint_selector);
}

#[test]
fn invalid_utf8_is_refused_at_the_first_bad_byte() {
    let dir = TempDir::new();
    let mut bytes = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: caf".to_vec();
    bytes.extend_from_slice(&[0xe9, b'}', b'\n']); // Latin-1 "é"
    let path = dir.write("latin1.yaml", &bytes);
    let error = load(&[&path]).unwrap_err();
    assert_eq!(
        lines(&error),
        [format!(
            "{}:3:21: (document): file is not valid UTF-8 (byte 0xe9); save it as UTF-8 text",
            path.display()
        )]
    );
}

#[test]
fn empty_and_separator_only_files_load_as_nothing() {
    for text in [
        "",
        "\n",
        "---",
        "---\n---\n",
        "# only a comment\n",
        "...\n",
        "--- ~\n",
    ] {
        assert_eq!(load_ok("empty.yaml", text), Config::default(), "{text:?}");
    }
}

#[test]
fn syntax_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: shop\n",
            "x.yaml:4:2: metadata: invalid YAML: tabs disallowed within this context (block \
             indentation)",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop\n",
            "x.yaml:4:1: metadata: invalid YAML: while parsing a flow mapping, did not find \
             expected ',' or '}'",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: *nowhere\n",
            "x.yaml:3:11: metadata: invalid YAML: while parsing node, found unknown anchor",
        ),
        (
            "a: 1\n<<: {b: 2}\n",
            "x.yaml:2:1: (document): YAML merge keys (<<) are not supported; write the keys out",
        ),
        (
            "a: !!python/object:os.system ls\n",
            "x.yaml:1:4: a: unsupported tag !!python/object:os.system; only the YAML core tags \
             (!!str, !!int, !!float, !!bool, !!null, !!seq, !!map) are accepted",
        ),
        (
            "{[a]: 1}\n",
            "x.yaml:1:2: (document): a mapping key must be a string, found a list",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(load_err("x.yaml", text), [*expected], "{text:?}");
    }
}

#[test]
fn a_syntax_error_anywhere_fails_the_whole_file_and_other_files_are_still_reported() {
    let dir = TempDir::new();
    let a = dir.write("a.yaml", format!("{WORKLOAD_WEB}---\nkind: [\n"));
    let b = dir.write(
        "b.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, name: y}\n",
    );
    let error = load(&[dir.path()]).unwrap_err();
    let lines = lines(&error);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}:", a.display())),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!(
            "{}:3:21: metadata.name: duplicate key \"name\" (first defined at line 3)",
            b.display()
        )
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let text = format!("\u{feff}{NAMESPACE_SHOP}");
    assert_eq!(load_ok("bom.yaml", &text).namespaces.len(), 1);
    assert!(load_str("bom.yaml", &text).is_ok());
}

#[test]
fn a_large_legitimate_configuration_loads_in_linear_time() {
    // 4,000 workloads and 4,000 policies, about 1.7 MB: nothing in the loader may be
    // quadratic in the number of documents.
    let mut text = String::new();
    for i in 0..4_000 {
        let (a, b) = (i / 250, i % 250);
        text.push_str(&format!(
            "---\napiVersion: sluice.io/v1alpha1\nkind: Workload\nmetadata:\n  name: w{i}\n  \
             namespace: shop\n  labels: {{app: w{i}}}\nspec:\n  addresses: [\"10.1.{a}.{b}\"]\n  \
             ports: [{{name: http, port: 8080}}]\n"
        ));
        text.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p{i}, \
             namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: w{i}}}}}\n  \
             ingress:\n  - fromEndpoints: [{{matchLabels: {{app: web}}}}]\n    toPorts:\n    \
             - ports: [{{port: \"8080\", protocol: TCP}}]\n"
        ));
    }
    let start = Instant::now();
    let config = load_ok("big.yaml", &text);
    let elapsed = start.elapsed();
    assert_eq!(
        (config.workloads.len(), config.policies.len()),
        (4_000, 4_000)
    );
    assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics[0]);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
