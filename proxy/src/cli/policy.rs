//! `sluice policy validate` and `sluice policy trace`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use sluice_config::{Config, Diagnostic, LoadError, load};
use sluice_identity::policy::{Decision, DecisionKind};
use sluice_identity::trace::{PartySpec, TraceQuery, TraceResult, policy_list, trace};
use sluice_identity::{CompiledPolicy, Protocol, Verdict};

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
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
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
}

fn run_trace(args: &TraceArgs) -> anyhow::Result<ExitCode> {
    let (port, protocol) = parse_port(&args.port)?;
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
    let result = trace(&config, &query)?;
    match args.output {
        Output::Json => {
            let doc = TraceDocument {
                api_version: "sluice.io/v1alpha1",
                kind: "PolicyTrace",
                result: &result,
            };
            emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        Output::Text => emit(&render_trace(&result))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render_trace(r: &TraceResult) -> String {
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
    let verdict = match (r.verdict, r.drop_reason, r.audit_drop_reason) {
        (Verdict::Denied, Some(reason), _) => {
            format!("DENIED ({} {})", reason.code(), reason.text())
        }
        (Verdict::Audit, _, Some(reason)) => {
            format!("AUDIT (would be {} {})", reason.code(), reason.text())
        }
        (v, _, _) => v.as_str().to_uppercase(),
    };
    let _ = writeln!(out, "Final verdict: {verdict}");
    out
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
