//! Loading files and directories of YAML into a [`Config`], under the contract in the
//! crate documentation: a bad policy is rejected alone, anything else fails the load
//! with every diagnostic found.

mod documents;
mod files;
mod kinds;
mod rejected;
mod resources;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::diag::Diagnostic;
use crate::model::Config;
use documents::Loader;
use files::Contents;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration has errors. Every one found is listed, in file order, the
    /// diagnostics of rejected policies included.
    #[error("{}", Lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// A path could not be read: it does not exist, or permissions forbid it.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LoadError {
    /// The diagnostics of an invalid configuration; empty for an I/O error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid(diagnostics) => diagnostics,
            Self::Io { .. } => &[],
        }
    }
}

/// One diagnostic per line.
struct Lines<'a>(&'a [Diagnostic]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Loads files and directories. Directories are read recursively, their entries in
/// name order, taking files named `*.yaml`, `*.yml` or `*.json` and skipping hidden
/// ones; a file named explicitly is read whatever its name.
///
/// # Errors
///
/// [`LoadError::Io`] when a path cannot be read; [`LoadError::Invalid`] with every
/// diagnostic when a file is not YAML, a document has an unknown kind, or a non-policy
/// resource is invalid. Invalid policies do not fail the load: see
/// [`Config::diagnostics`].
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Config, LoadError> {
    let files = files::collect(paths)?;
    let mut loader = Loader::default();
    for file in &files {
        match files::read(file)? {
            Contents::Text(text) => loader.add_file(file, &text),
            Contents::Refused(diagnostic) => loader.refuse_file(diagnostic),
        }
    }
    debug!(files = files.len(), "configuration read");
    loader.finish()
}

/// Loads YAML text as if read from a file named `file_name`.
///
/// # Errors
///
/// As [`load`], without I/O errors.
pub fn load_str(file_name: &str, text: &str) -> Result<Config, LoadError> {
    let mut loader = Loader::default();
    loader.add_file(Path::new(file_name), text);
    loader.finish()
}
