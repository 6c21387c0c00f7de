//! The admin socket server (tokio). The node owns a [`FlowRing`] and runs
//! `admin::serve(path, ring)`; every connection gets its own task.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

use super::{ErrorLine, FqdnCacheEntry, HandoverRequest, ObserveRequest, Request, Status};
use crate::flow::filter::CompiledFilters;
use crate::flow::{FlowRing, FlowsResponse, RecordedFlow, Timestamp};

/// Requests are small; anything longer is not a client of ours.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// A client that connects and says nothing is dropped after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent admin connections (each follower holds one).
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "another sluice node is already listening on {0}; stop it first (or set a different proxy.adminSocket in NodeConfig)"
    )]
    InUse(PathBuf),
    #[error(
        "{0} exists and is not a socket; refusing to replace it (remove it or set a different proxy.adminSocket in NodeConfig)"
    )]
    NotASocket(PathBuf),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AdminError {
    let path = path.to_owned();
    move |source| AdminError::Io {
        action,
        path,
        source,
    }
}

/// What the node has learned for `toFQDNs`, for `{"fqdn_cache":{}}`.
pub trait FqdnSource: Send + Sync + 'static {
    fn fqdn_cache(&self) -> Vec<FqdnCacheEntry>;
}

/// A bound admin socket. Dropping it removes the socket file (if it is still the one
/// this server created), unless the file was released to a successor ([`SocketFile`]).
#[derive(Debug)]
pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
    file: SocketFile,
    handovers: Option<mpsc::Sender<HandoverOffer>>,
}

/// Who removes the socket file: a node that hands its admin socket to a successor
/// releases it (the successor serves the same socket); a successor owns it once its
/// predecessor has let go. Shared with the server, which may be inside a task by then.
#[derive(Debug, Clone, Default)]
pub struct SocketFile {
    released: Arc<AtomicBool>,
}

impl SocketFile {
    pub fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
    }

    pub fn own(&self) {
        self.released.store(false, Ordering::Relaxed);
    }

    fn is_released(&self) -> bool {
        self.released.load(Ordering::Relaxed)
    }
}

/// A successor's handover request and its connection, for the node to answer.
#[derive(Debug)]
pub struct HandoverOffer {
    pub request: HandoverRequest,
    pub stream: UnixStream,
}

impl AdminServer {
    /// Binds `path`: creates the parent directory (0700) if missing, replaces a stale
    /// socket only when nothing answers on it, and makes the socket 0600. Must be
    /// called within a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, AdminError> {
        let path = path.as_ref().to_owned();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err("create directory", parent))?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_socket() => return Err(AdminError::NotASocket(path)),
            Ok(_) => match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => return Err(AdminError::InUse(path)),
                // Refused: a socket file left by a node that is gone.
                Err(_) => std::fs::remove_file(&path)
                    .or_else(|e| {
                        if e.kind() == io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(io_err("remove stale socket", &path))?,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &path)(e)),
        }
        let listener = UnixListener::bind(&path).map_err(io_err("listen on", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("set permissions on", &path))?;
        let meta = std::fs::metadata(&path).map_err(io_err("inspect", &path))?;
        Ok(Self {
            listener,
            path,
            identity: (meta.dev(), meta.ino()),
            file: SocketFile::default(),
            handovers: None,
        })
    }

    /// Serves the socket a predecessor bound at `path` (the same socket, so no client
    /// finds it closed during the switch). The socket file starts released (see
    /// [`SocketFile`]). Must be called within a tokio runtime.
    pub fn from_listener(
        listener: std::os::unix::net::UnixListener,
        path: impl AsRef<Path>,
    ) -> Result<Self, AdminError> {
        let path = path.as_ref().to_owned();
        let bound = listener
            .local_addr()
            .map_err(io_err("inspect the socket handed over for", &path))?;
        // The same file, however its path is spelled.
        let same_file = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
        if !bound.as_pathname().is_some_and(|b| same_file(b, &path)) {
            return Err(io_err("adopt", &path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the socket handed over is bound to {bound:?}"),
            )));
        }
        listener
            .set_nonblocking(true)
            .map_err(io_err("listen on", &path))?;
        let listener = UnixListener::from_std(listener).map_err(io_err("listen on", &path))?;
        let meta = std::fs::metadata(&path).map_err(io_err("inspect", &path))?;
        let file = SocketFile::default();
        file.release();
        Ok(Self {
            listener,
            path,
            identity: (meta.dev(), meta.ino()),
            file,
            handovers: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Handover requests go to `offers` (the node answers them); without it they are
    /// refused.
    pub fn accept_handovers(&mut self, offers: mpsc::Sender<HandoverOffer>) {
        self.handovers = Some(offers);
    }

    /// Who removes the socket file when the server is dropped.
    pub fn socket_file(&self) -> SocketFile {
        self.file.clone()
    }

    /// A duplicate of the listening socket, for a successor.
    pub fn try_clone_listener(&self) -> io::Result<OwnedFd> {
        self.listener.as_fd().try_clone_to_owned()
    }

    /// Serves until the future is dropped (or accepting fails).
    pub async fn run(self, ring: Arc<FlowRing>) -> Result<(), AdminError> {
        self.run_with(ring, None).await
    }

    /// [`AdminServer::run`], answering `fqdn_cache` requests from `fqdn`.
    pub async fn run_with(
        self,
        ring: Arc<FlowRing>,
        fqdn: Option<Arc<dyn FqdnSource>>,
    ) -> Result<(), AdminError> {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, _) = self
                .listener
                .accept()
                .await
                .map_err(io_err("accept on", &self.path))?;
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::warn!(path = %self.path.display(), "admin socket: too many connections, refusing one");
                let (_, mut w) = stream.into_split();
                let _ = write_error(&mut w, "too many admin connections; try again later").await;
                continue;
            };
            let ring = Arc::clone(&ring);
            let fqdn = fqdn.clone();
            let handovers = self.handovers.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, &ring, fqdn, handovers).await {
                    tracing::debug!(error = %e, "admin connection ended");
                }
                drop(permit);
            });
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if self.file.is_released() {
            return;
        }
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `path` and serves `ring` on it until the future is dropped.
pub async fn serve(path: impl AsRef<Path>, ring: Arc<FlowRing>) -> Result<(), AdminError> {
    AdminServer::bind(path)?.run(ring).await
}

async fn write_error<W: AsyncWrite + Unpin>(w: &mut W, msg: &str) -> io::Result<()> {
    let line = serde_json::to_string(&ErrorLine {
        error: msg.to_owned(),
    })
    .unwrap_or_default();
    w.write_all(line.as_bytes()).await?;
    w.write_all(b"\n").await?;
    w.flush().await
}

async fn handle(
    stream: UnixStream,
    ring: &FlowRing,
    fqdn: Option<Arc<dyn FqdnSource>>,
    handovers: Option<mpsc::Sender<HandoverOffer>>,
) -> io::Result<()> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut line = String::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut reader).take(MAX_REQUEST_BYTES).read_line(&mut line),
    )
    .await;
    match read {
        Err(_) => return write_error(&mut writer, "no request received in time").await,
        Ok(Err(e)) => return Err(e),
        Ok(Ok(0)) => return Ok(()),
        Ok(Ok(_)) => {}
    }
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return write_error(&mut writer, &format!("invalid request: {e}")).await,
    };
    match request {
        Request::Status {} => {
            let status = Status {
                num_flows: ring.len() as u64,
                max_flows: ring.capacity() as u64,
                seen_flows: ring.seen(),
                lost_events: ring.lost_events(),
            };
            let line =
                serde_json::to_string(&serde_json::json!({ "status": status })).unwrap_or_default();
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\n").await?;
            writer.flush().await
        }
        Request::Observe(req) => observe(req, ring, reader, writer).await,
        Request::FqdnCache {} => {
            let Some(fqdn) = fqdn else {
                return write_error(&mut writer, "this node does not learn FQDN addresses").await;
            };
            // The node's cache sits behind the lock its installs take: read it off the
            // runtime's workers.
            let Ok(entries) = tokio::task::spawn_blocking(move || fqdn.fqdn_cache()).await else {
                return write_error(&mut writer, "reading the FQDN cache failed").await;
            };
            let line = serde_json::to_string(&serde_json::json!({ "fqdn_cache": entries }))
                .unwrap_or_default();
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\n").await?;
            writer.flush().await
        }
        Request::Handover(request) => {
            let Some(offers) = handovers else {
                return write_error(&mut writer, "this node does not hand over").await;
            };
            if !reader.buffer().is_empty() {
                return write_error(&mut writer, "nothing may follow a handover request").await;
            }
            let stream = reader
                .into_inner()
                .reunite(writer.into_inner())
                .map_err(io::Error::other)?;
            let offer = HandoverOffer { request, stream };
            match offers.try_send(offer) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(mut offer)) => {
                    write_error(&mut offer.stream, "another takeover is in progress").await
                }
                Err(mpsc::error::TrySendError::Closed(mut offer)) => {
                    write_error(&mut offer.stream, "the node is stopping").await
                }
            }
        }
    }
}

/// Picks the flows of a snapshot that a request wants, oldest first.
fn select<'a>(
    snapshot: &'a [Arc<RecordedFlow>],
    filters: &CompiledFilters,
    req: &ObserveRequest,
) -> Vec<&'a Arc<RecordedFlow>> {
    let matching = snapshot.iter().filter(|e| filters.matches(e.flow()));
    match (req.first, req.last) {
        (Some(n), _) => matching
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .collect(),
        (None, Some(n)) => {
            let all: Vec<_> = matching.collect();
            let skip = all
                .len()
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
            all[skip..].to_vec()
        }
        (None, None) => matching.collect(),
    }
}

async fn write_flow<W: AsyncWrite + Unpin>(w: &mut W, entry: &RecordedFlow) -> io::Result<()> {
    let line = FlowsResponse::flow(Arc::clone(entry.flow())).to_json_line();
    w.write_all(line.as_bytes()).await?;
    w.write_all(b"\n").await
}

async fn observe<R, W>(
    req: ObserveRequest,
    ring: &FlowRing,
    mut reader: R,
    mut writer: W,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let filters = match req.filters.compile() {
        Ok(f) => f,
        Err(e) => return write_error(&mut writer, &e.to_string()).await,
    };
    if !req.follow {
        for entry in select(&ring.snapshot(), &filters, &req) {
            write_flow(&mut writer, entry).await?;
        }
        return writer.flush().await;
    }

    let sub = ring.subscribe();
    let mut receiver = sub.receiver;
    // The subscription was taken with the snapshot under the ring's lock, so the
    // receiver starts exactly after the snapshot's newest flow.
    let mut node_name = String::new();
    for entry in select(&sub.snapshot, &filters, &req) {
        write_flow(&mut writer, entry).await?;
    }
    if let Some(last) = sub.snapshot.last() {
        node_name.clone_from(&last.flow().node_name);
    }
    drop(sub.snapshot);
    writer.flush().await?;

    let mut scratch = [0u8; 256];
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(entry) => {
                    if filters.matches(entry.flow()) {
                        node_name.clone_from(&entry.flow().node_name);
                        write_flow(&mut writer, &entry).await?;
                        writer.flush().await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    ring.record_lost(n);
                    let line = FlowsResponse::lost(n, &node_name, Timestamp::now()).to_json_line();
                    writer.write_all(line.as_bytes()).await?;
                    writer.write_all(b"\n").await?;
                    writer.flush().await?;
                }
                Err(broadcast::error::RecvError::Closed) => return writer.flush().await,
            },
            // The client hung up (or sent more than it should): stop following.
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
        }
    }
}
