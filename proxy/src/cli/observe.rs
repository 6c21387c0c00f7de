//! `sluice observe`: read flows from the running node, like `hubble observe`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use sluice_proxy::admin::{self, ObserveRequest};
use sluice_proxy::flow::filter::FlowFilters;
use sluice_proxy::flow::filter::flags::{FilterBuilder, FilterFlag};
use sluice_proxy::flow::printer::{self, PrintOptions};
use sluice_proxy::flow::{FlowsResponse, ResponseEvent};

/// How many flows `observe` shows when neither --last, --first, --all nor --follow
/// says otherwise (Hubble's default).
const DEFAULT_LAST: u64 = 20;

#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// Show the last N flows held by the node (default 20, or 0 with --follow).
    #[arg(long, value_name = "N")]
    last: Option<u64>,
    /// Show the first N flows held by the node.
    #[arg(long, value_name = "N", conflicts_with_all = ["last", "follow", "all"])]
    first: Option<u64>,
    /// Show every flow the node holds.
    #[arg(long, conflicts_with = "last")]
    all: bool,
    /// Keep running and show flows as they happen.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Output format: compact, dict, json (= jsonpb), jsonpb, table.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Compact)]
    output: Format,
    /// Show the node name in each flow.
    #[arg(long)]
    print_node_name: bool,
    /// Show which policies allowed or denied policy verdicts.
    #[arg(long)]
    print_policy_names: bool,
    /// Show IP addresses instead of pod names.
    #[arg(long)]
    numeric: bool,
    /// The node's admin socket.
    #[arg(long, value_name = "PATH", default_value = admin::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(flatten)]
    filters: FilterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Compact,
    Dict,
    Json,
    Jsonpb,
    Table,
}

/// The filter flags in the order given: `--not` applies to the flag after it, which
/// derive cannot express, so these are read from the matches with their positions.
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    steps: Vec<(FilterFlag, String)>,
}

impl FilterArgs {
    fn build(&self) -> anyhow::Result<FlowFilters> {
        let mut builder = FilterBuilder::new();
        for (flag, value) in &self.steps {
            builder.set(*flag, value)?;
        }
        Ok(builder.build()?)
    }
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut steps: Vec<(usize, FilterFlag, String)> = Vec::new();
        for (flag, name, ..) in FilterFlag::ALL {
            let Some(indices) = m.indices_of(name) else {
                continue;
            };
            if let Some(values) = m.get_many::<String>(name) {
                steps.extend(indices.zip(values).map(|(i, v)| (i, *flag, v.clone())));
            }
        }
        steps.sort_by_key(|(i, ..)| *i);
        Ok(Self {
            steps: steps.into_iter().map(|(_, f, v)| (f, v)).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for FilterArgs {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for (flag, name, short, help) in FilterFlag::ALL {
            let mut arg = Arg::new(*name)
                .long(*name)
                .help(*help)
                .help_heading("Filters");
            if let Some(c) = short {
                arg = arg.short(*c);
            }
            arg = if *flag == FilterFlag::Not {
                // Each occurrence must keep its own position, which a count does not.
                arg.action(ArgAction::Append)
                    .num_args(0)
                    .default_missing_value("")
            } else {
                arg.action(ArgAction::Append).value_name("FILTER")
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

pub fn run(args: ObserveArgs) -> anyhow::Result<ExitCode> {
    let filters = args.filters.build()?;
    // Check locally first so a bad regex or port is reported before connecting.
    filters.compile()?;
    let last = match (args.first, args.all) {
        (Some(_), _) | (None, true) => None,
        (None, false) => Some(
            args.last
                .unwrap_or(if args.follow { 0 } else { DEFAULT_LAST }),
        ),
    };
    let request = ObserveRequest {
        last,
        first: args.first,
        follow: args.follow,
        filters,
    };
    let opts = PrintOptions {
        node_name: args.print_node_name,
        policy_names: args.print_policy_names,
        ip_translation: !args.numeric,
    };
    let lines = admin::observe(&args.socket, request)?;
    let mut out = Output::new(args.output, opts, args.follow);
    for line in lines {
        let line = line?;
        if !out.line(&line)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes flows in the chosen format.
struct Output {
    format: Format,
    opts: PrintOptions,
    follow: bool,
    printed: usize,
    table: Vec<Vec<String>>,
    stdout: io::Stdout,
}

impl Output {
    fn new(format: Format, opts: PrintOptions, follow: bool) -> Self {
        Self {
            format,
            opts,
            follow,
            printed: 0,
            table: vec![printer::table_header(&opts)],
            stdout: io::stdout(),
        }
    }

    /// Writes text; `false` when the reader went away (`sluice observe | head`).
    fn write(&mut self, text: &str) -> anyhow::Result<bool> {
        let mut out = self.stdout.lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
        }
    }

    fn line(&mut self, line: &str) -> anyhow::Result<bool> {
        if matches!(self.format, Format::Json | Format::Jsonpb) {
            return self.write(&format!("{line}\n"));
        }
        let resp = FlowsResponse::from_json_line(line)
            .with_context(|| format!("unreadable flow from the node: {line}"))?;
        let text = match (&resp.event, self.format) {
            (ResponseEvent::LostEvents(lost), _) => format!("{}\n", printer::compact_lost(lost)),
            (ResponseEvent::Flow(f), Format::Compact) => {
                format!("{}\n", printer::compact(f, &self.opts))
            }
            (ResponseEvent::Flow(f), Format::Dict) => {
                let sep = if self.printed > 0 {
                    format!("{}\n", printer::DICT_SEPARATOR)
                } else {
                    String::new()
                };
                format!("{sep}{}\n", printer::dict(f, &self.opts))
            }
            (ResponseEvent::Flow(f), _) => {
                let row = printer::table_row(f, &self.opts);
                if !self.follow {
                    self.table.push(row);
                    self.printed += 1;
                    return Ok(true);
                }
                // Following: align each row with the header, print the header once.
                let rendered = printer::render_table(&[self.table[0].clone(), row]);
                let mut rows = rendered.lines();
                let header = rows.next().unwrap_or_default();
                let body = rows.next().unwrap_or_default();
                if self.printed == 0 {
                    format!("{header}\n{body}\n")
                } else {
                    format!("{body}\n")
                }
            }
        };
        self.printed += 1;
        self.write(&text)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.format == Format::Table && !self.follow && self.table.len() > 1 {
            let text = printer::render_table(&self.table);
            self.write(&text)?;
        }
        Ok(())
    }
}
