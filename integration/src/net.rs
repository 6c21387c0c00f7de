//! Network namespaces, veth pairs, addresses, routes and the forwarding guard, through
//! iproute2's `ip`. Shelling out keeps the crate free of `unsafe` and netlink code, and
//! every failure comes with the exact command to paste into a shell.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::addressing::link_block;
use crate::error::{Error, Result};

/// Where `ip netns add` puts its bind mounts.
pub const NETNS_DIR: &str = "/run/netns";

/// Interface name of a pod's end of its veth pair, inside the pod netns.
pub const POD_INTERFACE: &str = "eth0";

/// Rule priority that sends packets forwarded from a pod and bound for the test space
/// to the main table, which holds the pods' /32 routes.
const PREF_TEST_SPACE: u32 = 10200;
/// Rule priority that answers every other forwarded pod packet with "unreachable".
const PREF_UNREACHABLE: u32 = 10201;

/// Runs `ip <args>` and returns its stdout.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Command {
            command: format!("ip {}", args.join(" ")),
            status: "did not start".to_owned(),
            stderr: format!("{e} (is iproute2 installed? scripts/deps installs it)"),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::command(
            format!("ip {}", args.join(" ")),
            Some(output.status),
            &output.stderr,
        ))
    }
}

/// `/run/netns/<name>`: open it, or stat it for the netns inode.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub(crate) fn add_netns(name: &str) -> Result<()> {
    ip(&["netns", "add", name]).map(drop)
}

/// Deletes the netns bind mount; the namespace itself goes once nothing holds it.
pub(crate) fn delete_netns(name: &str) -> Result<()> {
    if !netns_path(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name]).map(drop)
}

/// Names in /run/netns.
pub(crate) fn list_netns() -> Vec<String> {
    read_names(Path::new(NETNS_DIR))
}

/// Whether a link of that name exists in the root netns.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Harness links (`slt<octet>p<slot>`) in the root netns.
pub(crate) fn list_harness_links() -> Vec<String> {
    read_names(Path::new("/sys/class/net"))
        .into_iter()
        .filter(|name| link_block(name).is_some())
        .collect()
}

fn read_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `host_link` in the root netns, its peer `eth0` directly inside `netns`.
pub(crate) fn add_veth(host_link: &str, netns: &str) -> Result<()> {
    ip(&[
        "link",
        "add",
        host_link,
        "type",
        "veth",
        "peer",
        "name",
        POD_INTERFACE,
        "netns",
        netns,
    ])
    .map(drop)
}

/// Deletes a root-netns link (both ends of a veth pair go with it; so do its routes).
pub(crate) fn delete_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    ip(&["link", "delete", name]).map(drop)
}

/// Host side: `host/32` on the link, forwarding on for packets that arrive on it, up.
pub(crate) fn configure_host_side(link: &str, host: Ipv4Addr) -> Result<()> {
    ip(&["addr", "add", &format!("{host}/32"), "dev", link])?;
    // IPv4 checks forwarding on the *input* device only, so turning it on for our veths
    // makes the host route between pods without touching net.ipv4.ip_forward.
    let sysctl = format!("/proc/sys/net/ipv4/conf/{link}/forwarding");
    std::fs::write(&sysctl, "1").map_err(|e| Error::io("write", sysctl, e))?;
    ip(&["link", "set", link, "up"]).map(drop)
}

/// Routes `pod/32` to the pod's veth. `Ok(false)` when the address is already routed or
/// assigned on this host.
pub(crate) fn route_pod(link: &str, pod: Ipv4Addr) -> Result<bool> {
    let prefix = format!("{pod}/32");
    if !ip(&["-o", "addr", "show", "to", &prefix])?
        .trim()
        .is_empty()
    {
        return Ok(false);
    }
    match ip(&["route", "add", &prefix, "dev", link]) {
        Ok(_) => Ok(true),
        Err(Error::Command { stderr, .. }) if stderr.contains("File exists") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pod side: lo and eth0 up, `pod/32` on eth0, default route via the host side.
pub(crate) fn configure_pod_side(netns: &str, pod: Ipv4Addr, host: Ipv4Addr) -> Result<()> {
    let host = host.to_string();
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "link", "set", POD_INTERFACE, "up"])?;
    ip(&[
        "-n",
        netns,
        "addr",
        "add",
        &format!("{pod}/32"),
        "dev",
        POD_INTERFACE,
    ])?;
    ip(&[
        "-n",
        netns,
        "route",
        "add",
        &host,
        "dev",
        POD_INTERFACE,
        "scope",
        "link",
    ])?;
    ip(&[
        "-n",
        netns,
        "route",
        "add",
        "default",
        "via",
        &host,
        "dev",
        POD_INTERFACE,
    ])
    .map(drop)
}

/// Keeps forwarded pod traffic inside the test space: packets arriving on `link` and
/// bound for 10.200.0.0/16 use the main table (the pods' /32 routes); anything else the
/// host would forward (a resolver, the internet) is answered "unreachable". Traffic to the
/// host's own addresses is unaffected: the local table (priority 0) wins first.
pub(crate) fn add_forwarding_guard(link: &str) -> Result<()> {
    ip(&[
        "rule",
        "add",
        "pref",
        &PREF_TEST_SPACE.to_string(),
        "iif",
        link,
        "to",
        "10.200.0.0/16",
        "lookup",
        "main",
    ])?;
    ip(&[
        "rule",
        "add",
        "pref",
        &PREF_UNREACHABLE.to_string(),
        "iif",
        link,
        "unreachable",
    ])
    .map(drop)
}

/// Removes the guard rules of `link` (rules outlive their device, so this is explicit).
pub(crate) fn delete_forwarding_guard(link: &str) -> Result<()> {
    for (pref, iif) in guard_rules()? {
        if iif == link {
            ip(&["rule", "delete", "pref", &pref.to_string(), "iif", &iif])?;
        }
    }
    Ok(())
}

/// `(priority, iif)` of every guard rule on a harness link, live or stale.
pub(crate) fn guard_rules() -> Result<Vec<(u32, String)>> {
    let json = ip(&["-j", "rule", "show"])?;
    let rules: serde_json::Value = serde_json::from_str(&json).map_err(|e| Error::Command {
        command: "ip -j rule show".to_owned(),
        status: "unparsable output".to_owned(),
        stderr: e.to_string(),
    })?;
    Ok(rules
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            let pref = u32::try_from(rule.get("priority")?.as_u64()?).ok()?;
            let iif = rule.get("iif")?.as_str()?;
            let ours =
                matches!(pref, PREF_TEST_SPACE | PREF_UNREACHABLE) && link_block(iif).is_some();
            ours.then(|| (pref, iif.to_owned()))
        })
        .collect())
}
