//! Command-line interface.

mod fqdn;
mod node;
mod observe;
mod policy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sluice: a node-shared L7 proxy and mTLS mesh node enforcing Cilium policy.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check and explain policy offline.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Show the running node's flows, like `hubble observe`.
    Observe(Box<observe::ObserveArgs>),
    /// Run the node: pods, BPF redirects, the proxy and flows (root).
    Up(node::UpArgs),
    /// Run a command inside a running pod's cgroup and network namespace.
    Exec(node::ExecArgs),
    /// What the running node learned from DNS answers for toFQDNs.
    #[command(subcommand)]
    Fqdn(fqdn::FqdnCommand),
}

/// Runs a command. `Ok` carries the exit code of a command that ran (e.g. 1 for an
/// invalid configuration); `Err` is a failure to run at all.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Observe(args) => observe::run(*args),
        Command::Up(args) => node::run_up(args),
        Command::Exec(args) => node::run_exec(args),
        Command::Fqdn(cmd) => fqdn::run(cmd),
    }
}

/// Writes a command's output to stdout. A closed pipe (`sluice … | head`) ends the
/// output quietly instead of panicking, as command-line tools do.
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Output format shared by commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Short human text.
    Text,
    /// One JSON document (a stable schema, see docs/cli.md).
    Json,
}
