//! `sluice up` and `sluice exec`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use sluice_proxy::node::handover::DEFAULT_DRAIN;
use sluice_proxy::node::pods::{PodNames, enter_command};
use sluice_proxy::node::{UpOptions, node_cgroup, up};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Files or directories (read recursively) of YAML.
    #[arg(short, long, required = true)]
    config: Vec<PathBuf>,
    /// Do not print flows on stdout (they stay available to `sluice observe`).
    #[arg(long)]
    quiet: bool,
    /// Connection threads (each HTTP engine connection is served on one, with a runtime
    /// of its own), and as many threads for accepts, spliced connections, the DNS proxy,
    /// the admin socket and reloads; 0 (the default) is one per CPU, like nginx's
    /// `worker_processes auto`.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Live restart: take over from the node running on this machine (found on the
    /// admin socket of this configuration) without stopping its pods or dropping DNS;
    /// it hands over its sockets and BPF datapath, then exits.
    #[arg(long)]
    takeover: bool,
    /// With --takeover: how long the running node may go on serving the connections
    /// and queries it holds before it exits (seconds).
    #[arg(long, value_name = "SECONDS", requires = "takeover", default_value_t = DEFAULT_DRAIN.as_secs())]
    drain_timeout: u64,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The workload, `namespace/name`.
    workload: String,
    /// The command to run inside the workload's cgroup and network namespace.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run_up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let workers = match args.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("sluice-worker")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(up(UpOptions {
        config: args.config,
        print_flows: !args.quiet,
        takeover: args
            .takeover
            .then(|| std::time::Duration::from_secs(args.drain_timeout)),
        workers,
    }))?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let Some((namespace, name)) = args.workload.split_once('/') else {
        bail!("{:?}: name the workload as namespace/name", args.workload);
    };
    let names = PodNames::of(namespace, name);
    let cgroup = node_cgroup()?.join(namespace).join(name);
    if !cgroup.exists()
        || !std::path::Path::new("/run/netns")
            .join(&names.netns)
            .exists()
    {
        bail!(
            "no running pod {namespace}/{name}: is `sluice up` running with a workload of that name that has `run`?"
        );
    }
    let status = enter_command(&cgroup, &names.netns, &args.command)
        .status()
        .with_context(|| format!("running {:?} in {namespace}/{name}", args.command))?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}
