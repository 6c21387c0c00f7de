//! `sluice policy validate` and `sluice policy trace`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use sluice_config::{Config, Diagnostic, LoadError, load};
use sluice_identity::policy::{Decision, DecisionKind};
use sluice_identity::trace::{PartySpec, TraceQuery, TraceResult, policy_list, trace_with_policy};
use sluice_identity::{CompiledPolicy, DropReason, Protocol, Verdict};
use sluice_proxy::trace::dns::{DnsRules, DnsTrace, DnsVerdict, query_name, trace_dns};
use sluice_proxy::trace::http::{
    HttpQuery, HttpQueryError, HttpTrace, HttpVerdict, SideRules, default_host, trace_http,
};

use super::{Output, emit};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate configuration: exit 0 when valid, else print
    /// `file:line:column: field: reason` for every problem and exit 1.
    Validate(ValidateArgs),
    /// Answer whether a connection would be allowed, and why (like `cilium policy trace`).
    Trace(TraceArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories (read recursively) of YAML.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Files or directories (read recursively) of YAML.
    #[arg(short, long, required = true)]
    config: Vec<PathBuf>,
    /// Source: a workload `namespace/name`, an IP, a CIDR, an entity (`world`, `host`, …)
    /// or labels (`k8s:app=web,k8s:io.kubernetes.pod.namespace=shop`).
    #[arg(long)]
    from: String,
    /// Destination, in the same forms as --from.
    #[arg(long)]
    to: String,
    /// Destination port and protocol: `8080/TCP`, `53/UDP`, `8/ICMP` (an ICMP type);
    /// the protocol defaults to TCP.
    #[arg(long)]
    port: String,
    /// Assume mutual authentication between the two identities has completed (rules
    /// with `authentication.mode: required` otherwise answer 189).
    #[arg(long)]
    authenticated: bool,
    /// Trace one HTTP request on the connection: its method (default GET, POST for gRPC).
    /// With any --http-* flag the verdict is the final one for that request.
    #[arg(long, value_name = "METHOD", help_heading = "HTTP request")]
    http_method: Option<String>,
    /// The request's path and query, as sent (default `/`); normalised as the node does.
    #[arg(long, value_name = "PATH", help_heading = "HTTP request")]
    http_path: Option<String>,
    /// The request's host (Host or :authority); default: the destination's address and port.
    #[arg(long, value_name = "HOST", help_heading = "HTTP request")]
    http_host: Option<String>,
    /// A request header, `Name: value`; repeat for more. `content-type: application/grpc`
    /// makes the request a gRPC call (HTTP/2).
    #[arg(long, value_name = "HEADER", help_heading = "HTTP request")]
    http_header: Vec<String>,
    /// Trace one DNS query for this name on the connection (--port 53/UDP or 53/TCP to the
    /// resolver): the final verdict for that query.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = ["http_method", "http_path", "http_host", "http_header"]
    )]
    dns_name: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

impl TraceArgs {
    fn http(&self) -> HttpQuery {
        HttpQuery {
            method: self.http_method.clone(),
            path: self.http_path.clone(),
            host: self.http_host.clone(),
            headers: self.http_header.clone(),
        }
    }
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate(args) => validate(&args),
        PolicyCommand::Trace(args) => run_trace(&args),
    }
}

#[derive(Serialize)]
struct ValidateReport<'a> {
    valid: bool,
    resources: usize,
    policies: usize,
    errors: Vec<DiagnosticJson<'a>>,
}

#[derive(Serialize)]
struct DiagnosticJson<'a> {
    file: String,
    line: usize,
    column: usize,
    field: String,
    message: &'a str,
}

impl<'a> From<&'a Diagnostic> for DiagnosticJson<'a> {
    fn from(d: &'a Diagnostic) -> Self {
        Self {
            file: d.file.display().to_string(),
            line: d.line,
            column: d.column,
            field: d.field.to_string(),
            message: &d.message,
        }
    }
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let (config, mut diagnostics) = match load(&args.paths) {
        Ok(config) => {
            let diags = config.diagnostics.clone();
            (Some(config), diags)
        }
        Err(LoadError::Invalid(diags)) => (None, diags),
        // Not a problem in the configuration but a path that cannot be read.
        Err(e @ LoadError::Io { .. }) => {
            eprintln!("sluice: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(config) = &config {
        // Merge conflicts between policies only show when they are resolved together.
        let compiled = CompiledPolicy::compile(config).context("compiling policy")?;
        diagnostics.extend(compiled.diagnostics.iter().cloned());
    }
    let (resources, policies) = config
        .as_ref()
        .map_or((0, 0), |c| (resource_count(c), c.policies.len()));
    match args.output {
        Output::Json => {
            let report = ValidateReport {
                valid: diagnostics.is_empty(),
                resources,
                policies,
                errors: diagnostics.iter().map(DiagnosticJson::from).collect(),
            };
            emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        }
        Output::Text => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            if diagnostics.is_empty() {
                emit(&format!(
                    "valid: {resources} resources, {policies} policies\n"
                ))?;
            } else {
                eprintln!("invalid: {} problem(s)", diagnostics.len());
            }
        }
    }
    Ok(if diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn resource_count(c: &Config) -> usize {
    c.namespaces.len()
        + c.workloads.len()
        + c.services.len()
        + c.cidr_groups.len()
        + c.policies.len()
}

/// Parses `8080/TCP`, `53/udp`, `8080`.
fn parse_port(s: &str) -> anyhow::Result<(u16, Protocol)> {
    let (port, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (s, "TCP"),
    };
    let port: u16 = port
        .trim()
        .parse()
        .with_context(|| format!("--port {s:?}: the port must be a number 0-65535"))?;
    let Some(proto) = Protocol::parse(proto.trim()) else {
        bail!("--port {s:?}: protocol must be TCP, UDP, SCTP, ICMP or ICMPv6");
    };
    Ok((port, proto))
}

/// The JSON document of `policy trace -o json` (docs/cli.md).
#[derive(Serialize)]
struct TraceDocument<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    result: &'a TraceResult,
    /// With an HTTP request or DNS query traced, `verdict` is the final one for it and
    /// this is the connection's (L3/L4) verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    l3l4_verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<&'a HttpTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<&'a DnsTrace>,
}

/// What past L3/L4 a trace asks about.
enum L7Query {
    None,
    Http(HttpQuery),
    Dns(String),
}

/// The answer past L3/L4.
enum L7Answer {
    None,
    Http(Box<HttpTrace>),
    Dns(DnsTrace),
}

fn run_trace(args: &TraceArgs) -> anyhow::Result<ExitCode> {
    let (port, protocol) = parse_port(&args.port)?;
    // Flags that cannot go together are refused before anything is loaded.
    let l7_query = match (&args.dns_name, args.http()) {
        (Some(name), _) => L7Query::Dns(query_name(name, port, protocol)?),
        (None, http) if http.is_empty() => L7Query::None,
        (None, _) if protocol != Protocol::Tcp => {
            return Err(HttpQueryError::NotTcp(protocol).into());
        }
        (None, http) => L7Query::Http(http),
    };
    let query = TraceQuery {
        from: PartySpec::parse(&args.from).context("--from")?,
        to: PartySpec::parse(&args.to).context("--to")?,
        port,
        protocol,
        authenticated: args.authenticated,
    };
    let config = match load(&args.config) {
        Ok(c) => c,
        Err(LoadError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!("the configuration is invalid; run `sluice policy validate` for details");
        }
        Err(e) => return Err(e.into()),
    };
    for d in &config.diagnostics {
        eprintln!("warning: policy rejected, its endpoints fail closed: {d}");
    }
    let (mut result, policy) = trace_with_policy(&config, &query)?;
    let answer = match l7_query {
        L7Query::None => L7Answer::None,
        L7Query::Http(http) => {
            let host = default_host(&policy, &query.to, &result.destination, port);
            let request = http.request(host)?;
            L7Answer::Http(Box::new(trace_http(
                &config,
                &policy,
                &result,
                &request,
                args.authenticated,
            )))
        }
        L7Query::Dns(qname) => L7Answer::Dns(trace_dns(&config, &policy, &result, &qname)),
    };
    let l3l4 = result.verdict;
    let l3l4_verdict = match &answer {
        L7Answer::None => None,
        L7Answer::Http(h) => {
            result.verdict = h.final_verdict(l3l4);
            Some(l3l4)
        }
        L7Answer::Dns(d) => {
            result.verdict = d.final_verdict();
            // The DNS proxy cannot authenticate: a query whose allow needs it is dropped
            // (189) even when the connection was traced as authenticated.
            if d.verdict == DnsVerdict::Dropped && result.drop_reason.is_none() {
                result.drop_reason = Some(DropReason::AuthRequired);
                result.drop_reason_desc = Some(DropReason::AuthRequired.desc());
            }
            Some(l3l4)
        }
    };
    match args.output {
        Output::Json => {
            let doc = TraceDocument {
                api_version: "sluice.io/v1alpha1",
                kind: "PolicyTrace",
                result: &result,
                l3l4_verdict,
                http: match &answer {
                    L7Answer::Http(h) => Some(&**h),
                    _ => None,
                },
                dns: match &answer {
                    L7Answer::Dns(d) => Some(d),
                    _ => None,
                },
            };
            emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        Output::Text => {
            let mut text = render_connection(&result);
            match &answer {
                L7Answer::None => text.push_str(&final_line(&result)),
                L7Answer::Http(h) => text.push_str(&render_http(&result, h)),
                L7Answer::Dns(d) => text.push_str(&render_dns(&result, d)),
            }
            emit(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The connection part of the text output: parties, both directions, L7 rules.
fn render_connection(r: &TraceResult) -> String {
    use std::fmt::Write;
    let name = |p: &sluice_identity::trace::Party| match &p.name {
        Some(n) => format!("{n} (identity {})", p.identity),
        None => format!("identity {} [{}]", p.identity, p.labels.join(" ")),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} -> {} {}/{}",
        name(&r.source),
        name(&r.destination),
        r.port,
        r.protocol
    );
    for d in r.egress.iter().chain(r.ingress.iter()) {
        let _ = writeln!(
            out,
            "  {:<7} {:<28} {}",
            d.direction.as_str().to_lowercase(),
            d.endpoint,
            describe(&d.decision)
        );
    }
    if r.egress.is_none() {
        let _ = writeln!(
            out,
            "  egress  (source is not an endpoint: no egress policy)"
        );
    }
    if r.ingress.is_none() {
        let _ = writeln!(
            out,
            "  ingress (destination is not an endpoint: no ingress policy)"
        );
    }
    for l7 in &r.l7 {
        let how = if l7.policy.wildcard {
            "all requests allowed"
        } else {
            "requests checked"
        };
        let _ = writeln!(
            out,
            "  L7 proxy ({}): {} {} rule set(s), {how}",
            l7.direction.as_str().to_lowercase(),
            l7.policy.kind.as_str(),
            l7.policy.rules.len()
        );
    }
    if r.authentication.mode != sluice_identity::policy::AuthMode::Disabled {
        let _ = writeln!(out, "  authentication: {}", r.authentication.mode.as_str());
    }
    out
}

/// The connection's verdict with its reason: `DENIED (133 Policy denied)`.
fn connection_verdict(r: &TraceResult) -> String {
    match (r.verdict, r.drop_reason, r.audit_drop_reason) {
        (Verdict::Denied, Some(reason), _) => {
            format!("DENIED ({} {})", reason.code(), reason.text())
        }
        (Verdict::Audit, _, Some(reason)) => {
            format!("AUDIT (would be {} {})", reason.code(), reason.text())
        }
        (v, _, _) => v.as_str().to_uppercase(),
    }
}

fn final_line(r: &TraceResult) -> String {
    format!("Final verdict: {}\n", connection_verdict(r))
}

/// The HTTP part of the text output, ending with the final verdict for the request.
fn render_http(r: &TraceResult, h: &HttpTrace) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let req = &h.request;
    let host = req.host.as_deref().unwrap_or("none");
    let grpc = if req.grpc { ", gRPC" } else { "" };
    let _ = writeln!(
        out,
        "{} {} {} (host {host}{grpc})",
        req.protocol, req.method, req.path
    );
    for header in &req.headers {
        let _ = writeln!(out, "  {}: {}", header.name, header.value);
    }
    if let Some(n) = &h.normalized {
        let path = n.path.as_deref().unwrap_or("(none)");
        let host = n.host.as_deref().unwrap_or("none");
        let _ = writeln!(out, "  normalised: {path} (host {host})");
    }
    for side in &h.sides {
        let how = match (side.rules, &side.matched, side.verdict) {
            (SideRules::Unrestricted, _, _) => "ALLOWED (no HTTP rules)".to_owned(),
            (SideRules::DenyAll, _, _) => format!(
                "DENIED (every request: its allow needs authentication the node cannot do yet, or its rules do not compile; {})",
                policy_list(&side.policies)
            ),
            (SideRules::Rules, Some(m), _) => format!(
                "ALLOWED by {}: {}",
                m.policy,
                serde_json::to_string(&m.rule).unwrap_or_default()
            ),
            (SideRules::Rules, None, _) => format!(
                "DENIED (none of {} rules.http entries of {} matches)",
                side.rule_count,
                policy_list(&side.policies)
            ),
        };
        let _ = writeln!(
            out,
            "  {:<7} {:<28} {how}",
            side.direction.as_str().to_lowercase(),
            side.endpoint
        );
        for line in &side.header_log {
            let _ = writeln!(
                out,
                "    header {} {}: {}",
                line.kind, line.name, line.value
            );
        }
    }
    for edit in &h.header_edits {
        let value = edit
            .value
            .as_deref()
            .map_or_else(String::new, |v| format!(": {v}"));
        let _ = writeln!(
            out,
            "  {} header {}{value} ({} rule)",
            edit.action,
            edit.name,
            edit.direction.as_str().to_lowercase()
        );
    }
    if let Some(note) = &h.note {
        let _ = writeln!(out, "  {note}");
    }
    let verdict = match (h.verdict, &h.response) {
        (None, _) => connection_verdict(r),
        (Some(HttpVerdict::Allowed), _) => {
            format!("{} (forwarded)", r.verdict.as_str().to_uppercase())
        }
        (Some(HttpVerdict::Rejected), Some(resp)) => {
            let why = h.rejection.as_ref().map_or("", |x| x.message.as_str());
            let status = http::StatusCode::from_u16(resp.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map_or_else(
                    || resp.status.to_string(),
                    |r| format!("{} {r}", resp.status),
                );
            format!("DENIED ({status}, refused before any rule: {why})")
        }
        (Some(HttpVerdict::Denied), Some(resp)) => {
            let by = h.denied_by.as_ref().map_or_else(String::new, |d| {
                format!(
                    " by {} rules of {}",
                    d.direction.as_str().to_lowercase(),
                    d.endpoint
                )
            });
            match &resp.grpc_status {
                Some(code) => format!("DENIED{by} (gRPC status {code} PERMISSION_DENIED)"),
                None => format!(
                    "DENIED{by} ({} {:?})",
                    resp.status,
                    resp.body.as_deref().unwrap_or("")
                ),
            }
        }
        (Some(_), None) => "DENIED".to_owned(),
    };
    let _ = writeln!(out, "Final verdict: {verdict}");
    out
}

/// The DNS part of the text output, ending with the final verdict for the query.
fn render_dns(r: &TraceResult, d: &DnsTrace) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "DNS query {}", d.query);
    match d.rules {
        Some(DnsRules::AllowAll) => {
            let _ = writeln!(
                out,
                "  rules.dns: none for this resolver, every name may be asked"
            );
        }
        Some(DnsRules::RefuseAll) => {
            let _ = writeln!(
                out,
                "  rules.dns: the port has L7 rules of another kind; every name is refused"
            );
        }
        Some(DnsRules::Selectors) if d.allowed_by.is_empty() => {
            let _ = writeln!(
                out,
                "  rules.dns of {} do not allow it",
                policy_list(&d.refused_by)
            );
        }
        Some(DnsRules::Selectors) => {
            for m in &d.allowed_by {
                let _ = writeln!(
                    out,
                    "  rules.dns: allowed by {} ({})",
                    selector_text(&m.selector),
                    m.policy
                );
            }
        }
        None => {}
    }
    for m in &d.to_fqdns {
        let ports = if m.ports.is_empty() {
            "every port".to_owned()
        } else {
            m.ports.join(", ")
        };
        let _ = writeln!(
            out,
            "  toFQDNs: {} ({}, {ports}) selects it",
            selector_text(&m.selector),
            m.policy
        );
    }
    let verdict = match d.verdict {
        DnsVerdict::Forwarded => "ALLOWED (forwarded to the resolver)".to_owned(),
        DnsVerdict::Refused => format!(
            "DENIED (answered {} by the DNS proxy)",
            d.answer.unwrap_or("REFUSED")
        ),
        DnsVerdict::Dropped => {
            let reason = r
                .drop_reason
                .map_or_else(String::new, |x| format!("{} {}; ", x.code(), x.text()));
            format!("DENIED ({reason}the query is dropped, no answer)")
        }
        DnsVerdict::Audit => "AUDIT (forwarded; policy would drop it)".to_owned(),
    };
    let _ = writeln!(out, "Final verdict: {verdict}");
    out
}

fn selector_text(s: &sluice_config::types::FqdnSelector) -> String {
    match (&s.match_name, &s.match_pattern) {
        (Some(n), _) => format!("matchName {n}"),
        (None, Some(p)) => format!("matchPattern {p}"),
        (None, None) => "(empty selector)".to_owned(),
    }
}

fn describe(d: &Decision) -> String {
    let verdict = d.verdict.as_str().to_uppercase();
    match d.kind {
        DecisionKind::EnforcementDisabled => format!("{verdict} (policy enforcement is never)"),
        DecisionKind::NotEnforced => format!("{verdict} (no policy enforces this direction)"),
        DecisionKind::AllowedByRule => format!("{verdict} by {}", policy_list(&d.allowed_by)),
        DecisionKind::DeniedByRule => format!(
            "{verdict} by {} (181 Policy denied by denylist)",
            policy_list(&d.denied_by)
        ),
        DecisionKind::DefaultDeny => {
            format!("{verdict} (133 Policy denied: default deny, no rule allows it)")
        }
        DecisionKind::FailClosed => format!(
            "{verdict} (133: fails closed, invalid policy {} selects this endpoint)",
            policy_list(&d.rejected)
        ),
    }
}
