//! Helpers shared by the loader's integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_config::{Config, LoadError, load_str};

/// A directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sluice-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        create_dir_all(&path);
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` at `relative`, creating parent directories.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent() {
            create_dir_all(parent);
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }
}

fn create_dir_all(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Loads `text` as `file_name`, expecting success.
pub fn load_ok(file_name: &str, text: &str) -> Config {
    match load_str(file_name, text) {
        Ok(config) => config,
        Err(e) => panic!("expected {file_name} to load, got:\n{e}"),
    }
}

/// Loads `text` as `file_name`, expecting failure; the diagnostics as the user sees
/// them, one string per line.
pub fn load_err(file_name: &str, text: &str) -> Vec<String> {
    match load_str(file_name, text) {
        Ok(config) => panic!("expected {file_name} to fail, got {config:#?}"),
        Err(e) => lines(&e),
    }
}

pub fn lines(error: &LoadError) -> Vec<String> {
    error.to_string().lines().map(str::to_owned).collect()
}

/// The diagnostics of policies rejected alone, as the user sees them.
pub fn rejections(config: &Config) -> Vec<String> {
    config.diagnostics.iter().map(ToString::to_string).collect()
}

pub const NAMESPACE_SHOP: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    team: commerce
";

pub const WORKLOAD_WEB: &str = "\
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  serviceAccount: web
  addresses: [\"10.200.1.2\"]
";

pub const WORKLOAD_API: &str = "\
apiVersion: sluice.io/v1alpha1
kind: Workload
metadata:
  name: api
  namespace: shop
  labels:
    app: api
spec:
  addresses: [\"10.200.1.3\"]
  ports:
  - name: http
    port: 8080
    protocol: TCP
";

/// The example of spec/cilium-policy.md §1: valid.
pub const CNP_API_READ_ONLY: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: api-read-only
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: api
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: web
    toPorts:
    - ports:
      - port: \"8080\"
        protocol: TCP
      rules:
        http:
        - method: GET
          path: \"/v1/items(/.*)?\"
";

/// Joins documents into one multi-document stream.
pub fn stream(documents: &[&str]) -> String {
    documents.join("---\n")
}
