//! Compiles the BPF programs (src/bpf/sluice.bpf.c) with clang, and runs a host-compiled
//! probe that prints the C layout of every map struct for tests/layout.rs.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const BPF_SOURCES: &[&str] = &[
    "src/bpf/sluice.bpf.c",
    "src/bpf/common.h",
    "src/bpf/maps.h",
    "src/bpf/sock_addr.h",
    "src/bpf/egress.c",
    "src/bpf/dns_reply.c",
    "src/bpf/sockops.c",
    "src/bpf/ingress.c",
    "src/bpf/dns_egress.c",
    "src/bpf/packet.h",
    "src/bpf/layout_probe.c",
];

/// Debian's multiarch include dir: without it clang does not find `asm/types.h`.
const MULTIARCH_INCLUDE: &str = "/usr/include/x86_64-linux-gnu";

fn main() {
    for source in BPF_SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-env-changed=SLUICE_CLANG");
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(message) = build_bpf(&out_dir).and_then(|()| probe_layout(&out_dir)) {
        eprintln!("\nerror: {message}\n");
        std::process::exit(1);
    }
}

fn build_bpf(out_dir: &Path) -> Result<(), String> {
    let clang = env::var("SLUICE_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let object = out_dir.join("sluice.bpf.o");
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{MULTIARCH_INCLUDE}"))
        .args(["-c", "src/bpf/sluice.bpf.c", "-o"])
        .arg(&object)
        .status()
        .map_err(|e| {
            format!(
                "cannot run `{clang}` to compile the BPF programs ({e}). \
                 Install the build dependencies as root with `scripts/deps` \
                 (clang, libbpf-dev, linux-libc-dev)."
            )
        })?;
    if !status.success() {
        return Err(format!(
            "`{clang}` failed to compile src/bpf/sluice.bpf.c ({status}). If headers such as \
             bpf/bpf_helpers.h or asm/types.h are missing, run `scripts/deps` as root."
        ));
    }
    Ok(())
}

fn probe_layout(out_dir: &Path) -> Result<(), String> {
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let probe = out_dir.join("layout_probe");
    let status = Command::new(&cc)
        .args(["-Wall", "-Werror", "-Isrc/bpf"])
        .arg(format!("-I{MULTIARCH_INCLUDE}"))
        .arg("src/bpf/layout_probe.c")
        .arg("-o")
        .arg(&probe)
        .status()
        .map_err(|e| {
            format!("cannot run the host C compiler `{cc}` ({e}); run `scripts/deps` as root")
        })?;
    if !status.success() {
        return Err(format!(
            "`{cc}` failed to compile src/bpf/layout_probe.c ({status})"
        ));
    }
    let output = Command::new(&probe)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", probe.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", probe.display(), output.status));
    }
    std::fs::write(out_dir.join("c_layout.txt"), &output.stdout)
        .map_err(|e| format!("cannot write c_layout.txt: {e}"))
}
