//! The blocking admin client the CLI uses: one connection, one request, then lines.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::{ErrorLine, FqdnCacheEntry, ObserveRequest, Request, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no sluice node is listening on {}; start one with `sluice up`", .0.display())]
    NoNode(PathBuf),
    #[error("permission denied on {}: the admin socket is open only to the user that started the node (try again with sudo)", .0.display())]
    PermissionDenied(PathBuf),
    #[error("the node refused the request: {0}")]
    Server(String),
    #[error("admin socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("admin socket {}: unreadable reply line: {source}", path.display())]
    BadLine {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn connect(path: &Path, request: &Request) -> Result<UnixStream, ClientError> {
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NoNode(path.to_owned())
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_owned()),
        _ => ClientError::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    let mut line = serde_json::to_string(request).unwrap_or_default();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(stream)
}

/// Flow lines from the node, as sent (`{"flow":…}` or `{"lost_events":…}`).
pub struct FlowLines {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Iterator for FlowLines {
    type Item = Result<String, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                if line.starts_with(r#"{"error":"#) {
                    return Some(match serde_json::from_str::<ErrorLine>(&line) {
                        Ok(e) => Err(ClientError::Server(e.error)),
                        Err(source) => Err(ClientError::BadLine {
                            path: self.path.clone(),
                            source,
                        }),
                    });
                }
                Some(Ok(line))
            }
            Err(source) => Some(Err(ClientError::Io {
                path: self.path.clone(),
                source,
            })),
        }
    }
}

/// Sends an observe request; the lines come as the node sends them.
pub fn observe(path: &Path, request: ObserveRequest) -> Result<FlowLines, ClientError> {
    let stream = connect(path, &Request::Observe(request))?;
    Ok(FlowLines {
        path: path.to_owned(),
        reader: BufReader::new(stream),
    })
}

/// Asks the node for its ring's counters.
pub fn status(path: &Path) -> Result<Status, ClientError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        status: Status,
    }
    one_reply::<Reply>(path, &Request::Status {}).map(|r| r.status)
}

/// Asks the node what `toFQDNs` learned.
pub fn fqdn_cache(path: &Path) -> Result<Vec<FqdnCacheEntry>, ClientError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        fqdn_cache: Vec<FqdnCacheEntry>,
    }
    one_reply::<Reply>(path, &Request::FqdnCache {}).map(|r| r.fqdn_cache)
}

/// Sends `request` and reads the one line the node answers it with.
fn one_reply<R: serde::de::DeserializeOwned>(
    path: &Path,
    request: &Request,
) -> Result<R, ClientError> {
    let stream = connect(path, request)?;
    let mut lines = FlowLines {
        path: path.to_owned(),
        reader: BufReader::new(stream),
    };
    let line = lines
        .next()
        .unwrap_or_else(|| Err(ClientError::Server("the node closed the connection".into())))?;
    serde_json::from_str::<R>(&line).map_err(|source| ClientError::BadLine {
        path: path.to_owned(),
        source,
    })
}
