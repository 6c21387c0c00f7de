//! `sluice fqdn cache list`: what the running node learned for `toFQDNs`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sluice_proxy::admin::{self, FqdnCacheEntry};

use super::{Output, emit};

#[derive(Debug, Subcommand)]
pub enum FqdnCommand {
    /// The FQDN cache: names the workloads looked up and the addresses they opened.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Lists every (endpoint, name, address) entry with its expiry.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// The node's admin socket.
    #[arg(long, value_name = "PATH", default_value = admin::DEFAULT_SOCKET)]
    socket: PathBuf,
}

pub fn run(cmd: FqdnCommand) -> anyhow::Result<ExitCode> {
    let FqdnCommand::Cache(CacheCommand::List(args)) = cmd;
    let entries = admin::fqdn_cache(&args.socket)?;
    let text = match args.output {
        Output::Json => {
            let doc = serde_json::json!({
                "apiVersion": "sluice.io/v1alpha1",
                "kind": "FqdnCache",
                "entries": entries,
            });
            format!("{}\n", serde_json::to_string_pretty(&doc)?)
        }
        Output::Text => table(&entries),
    };
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per (endpoint, name, address), aligned.
fn table(entries: &[FqdnCacheEntry]) -> String {
    let mut rows = vec![[
        "ENDPOINT".to_owned(),
        "NAME".to_owned(),
        "IP".to_owned(),
        "IDENTITY".to_owned(),
        "TTL".to_owned(),
        "EXPIRES IN".to_owned(),
        "SOURCE".to_owned(),
        "SELECTORS".to_owned(),
    ]];
    for e in entries {
        let selectors = if e.selectors.is_empty() {
            "-".to_owned()
        } else {
            e.selectors.join(",")
        };
        for ip in &e.ips {
            rows.push([
                e.endpoint.clone(),
                e.name.clone(),
                ip.ip.to_string(),
                ip.identity
                    .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                format!("{}s", ip.ttl),
                format!("{}s", ip.expires_in),
                ip.source.clone(),
                selectors.clone(),
            ]);
        }
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proxy::admin::FqdnCacheIp;

    #[test]
    fn the_table_has_one_line_per_address() {
        let entries = vec![FqdnCacheEntry {
            endpoint: "billing/worker".into(),
            name: "api.stripe.com.".into(),
            selectors: vec!["api.stripe.com".into()],
            ips: vec![FqdnCacheIp {
                ip: "192.0.2.10"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                identity: Some(16_777_300),
                ttl: 30,
                expires_at: "2024-01-01T00:00:30Z".into(),
                expires_in: 12,
                source: "lookup".into(),
            }],
        }];
        let text = table(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("ENDPOINT"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "billing/worker",
                "api.stripe.com.",
                "192.0.2.10",
                "16777300",
                "30s",
                "12s",
                "lookup",
                "api.stripe.com"
            ]
        );
    }
}
