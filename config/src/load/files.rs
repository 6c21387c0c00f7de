//! Finding configuration files and reading them as bounded UTF-8 text.
//!
//! Hidden files and directories are skipped and symlinks are followed, which is what a
//! Kubernetes ConfigMap volume needs: its visible `policy.yaml` is a symlink into a
//! hidden `..data/` directory, whose timestamped twin must not be read a second time.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tracing::debug;

use super::LoadError;
use crate::diag::{Diagnostic, FieldPath};
use crate::yaml::{MAX_FILE_BYTES, too_large};

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The files to read, in a deterministic order: each path as given, directories
/// expanded recursively with their entries sorted by name. A file reached twice (named
/// and inside a named directory, or through a symlink) is read once, where first found.
pub(super) fn collect(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>, LoadError> {
    let mut collector = Collector::default();
    for path in paths {
        let path = path.as_ref();
        let metadata = fs::metadata(path).map_err(|e| io_error(path, e))?;
        if metadata.is_dir() {
            collector.walk(path)?;
        } else {
            // A file named explicitly is read whatever its name.
            collector.add(path)?;
        }
    }
    Ok(collector.files)
}

#[derive(Default)]
struct Collector {
    /// Canonical paths of the directories and files taken so far.
    seen: HashSet<PathBuf>,
    files: Vec<PathBuf>,
}

impl Collector {
    fn add(&mut self, file: &Path) -> Result<(), LoadError> {
        let canonical = fs::canonicalize(file).map_err(|e| io_error(file, e))?;
        if self.seen.insert(canonical) {
            self.files.push(file.to_path_buf());
        }
        Ok(())
    }

    fn walk(&mut self, dir: &Path) -> Result<(), LoadError> {
        // A symlink back up the tree must not loop.
        let canonical = fs::canonicalize(dir).map_err(|e| io_error(dir, e))?;
        if !self.seen.insert(canonical) {
            return Ok(());
        }
        let mut entries = fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_error(dir, e))?;
        entries.sort();
        for path in entries {
            let hidden = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            let metadata = fs::metadata(&path).map_err(|e| io_error(&path, e))?;
            if metadata.is_dir() {
                self.walk(&path)?;
            } else if has_config_extension(&path) {
                self.add(&path)?;
            } else {
                debug!(path = %path.display(), "skipping file without a .yaml, .yml or .json name");
            }
        }
        Ok(())
    }
}

fn has_config_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// What reading one file gives.
pub(super) enum Contents {
    Text(String),
    /// The file is not acceptable text; the whole load fails with this.
    Refused(Diagnostic),
}

pub(super) fn read(path: &Path) -> Result<Contents, LoadError> {
    let file = fs::File::open(path).map_err(|e| io_error(path, e))?;
    let declared = file.metadata().map_err(|e| io_error(path, e))?.len();
    if declared > MAX_FILE_BYTES as u64 {
        let size = usize::try_from(declared).unwrap_or(usize::MAX);
        return Ok(Contents::Refused(whole_file(path, too_large(size))));
    }
    // Bounded even if the file grows while it is read.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Ok(Contents::Refused(whole_file(path, too_large(bytes.len()))));
    }
    Ok(match String::from_utf8(bytes) {
        Ok(text) => Contents::Text(text),
        Err(e) => Contents::Refused(not_utf8(path, e.as_bytes(), e.utf8_error())),
    })
}

fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> Diagnostic {
    let valid = &bytes[..error.valid_up_to()];
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
    // The prefix is valid UTF-8 by definition, so its characters can be counted.
    let column = 1 + String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count();
    let byte = bytes.get(error.valid_up_to()).copied().unwrap_or_default();
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        field: FieldPath::root(),
        message: format!("file is not valid UTF-8 (byte 0x{byte:02x}); save it as UTF-8 text"),
    }
}

fn whole_file(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: FieldPath::root(),
        message,
    }
}

fn io_error(path: &Path, source: io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}
