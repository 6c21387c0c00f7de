//! The handover protocol, spoken on an admin socket connection once the running node
//! (the predecessor) accepted a successor's `handover` request:
//!
//! ```text
//! successor                                       predecessor
//!   {"handover":{"protocol":1,"pid":…,"drain_seconds":…}} →
//!                                  ← one byte "F" carrying the descriptors (SCM_RIGHTS)
//!                                  ← {"state":{"pid":…,"bpf_object":…,"pods":[…],"fds":[…]}}
//!   adopts, serves the same sockets beside the predecessor, writes the kernel maps
//!   {"ready":{}}   or   {"abort":{"reason":…}} →
//!                                    stops accepting and reading, releases everything
//!                                  ← {"released":{}}
//!                                    drains the connections it holds, exits
//! ```
//!
//! The descriptors come first, each a duplicate of the predecessor's own, and `fds` in
//! the state says what each one is, in order. A refusal is one `{"error":…}` line in
//! place of the descriptors. Until `released` the predecessor owns everything: an error,
//! an abort or a closed connection before it leave the predecessor in charge.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The protocol this build speaks; a predecessor that speaks another refuses.
pub const PROTOCOL: u32 = 1;

/// The most descriptors one handover carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// The byte that carries the descriptors.
const FDS_MARKER: u8 = b'F';

/// A line longer than this is not from a node of ours.
const MAX_LINE: u64 = 1 << 20;

/// A message after the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// predecessor → successor, after the descriptors.
    State(Box<State>),
    /// successor → predecessor: serving beside it; let go.
    Ready {},
    /// successor → predecessor: giving up; keep serving.
    Abort { reason: String },
    /// predecessor → successor: stopped accepting and reading; everything is yours.
    Released {},
    /// A refusal (the admin socket's error line).
    Error(String),
}

/// What the predecessor runs, and what each descriptor it sent is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    /// `sluice_bpf::object_digest()` of the predecessor: the programs that keep running.
    pub bpf_object: String,
    pub pods: Vec<PodState>,
    /// One per descriptor, in the order they were sent.
    pub fds: Vec<FdRole>,
}

/// A pod the predecessor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub address: Ipv4Addr,
    pub command: Vec<String>,
    /// The main command's process id, when the predecessor started it.
    pub command_pid: Option<u32>,
}

/// What a descriptor is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum FdRole {
    /// `/run/sluice/node.lock`, locked.
    NodeLock,
    /// The BPF crate's instance lock of a cgroup the programs are attached to.
    CgroupLock {
        cgroup: PathBuf,
    },
    /// A BPF map, by name.
    Map {
        name: String,
    },
    ProxyListener {
        addr: SocketAddr,
    },
    DnsUdp {
        addr: SocketAddr,
    },
    DnsTcp {
        addr: SocketAddr,
    },
    /// The admin socket's listener.
    Admin,
}

/// What the predecessor sends first: descriptors, or a refusal.
#[derive(Debug)]
pub enum Opening {
    Fds(Vec<OwnedFd>),
    Message(Message),
}

/// One handover connection.
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Writes one JSON line.
    pub async fn send_json<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        self.writer.flush().await
    }

    pub async fn send(&mut self, message: &Message) -> io::Result<()> {
        self.send_json(message).await
    }

    /// The next message; `None` when the other side closed.
    pub async fn recv(&mut self) -> io::Result<Option<Message>> {
        self.recv_after(Vec::new()).await
    }

    /// A message whose first bytes (`start`) were read already.
    async fn recv_after(&mut self, start: Vec<u8>) -> io::Result<Option<Message>> {
        let mut line = start;
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 && line.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Sends `fds` as one marker byte with `SCM_RIGHTS`.
    pub async fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} descriptors to hand over, more than one message carries ({MAX_FDS})",
                    fds.len()
                ),
            ));
        }
        let stream: &UnixStream = self.writer.as_ref();
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        stream
            .async_io(Interest::WRITABLE, || {
                let mut control = SendAncillaryBuffer::new(&mut space);
                if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                    return Err(io::Error::other("the descriptors do not fit the message"));
                }
                let sent = sendmsg(
                    stream,
                    &[IoSlice::new(&[FDS_MARKER])],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )?;
                if sent == 1 {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the descriptors were not sent",
                    ))
                }
            })
            .await
    }

    /// Reads what the predecessor sends first. Must be the first read on the
    /// connection: a buffered read would consume the marker and close its descriptors.
    pub async fn recv_opening(&mut self) -> io::Result<Opening> {
        if !self.reader.buffer().is_empty() {
            return Err(io::Error::other("bytes were read before the descriptors"));
        }
        let stream: &UnixStream = self.reader.get_ref().as_ref();
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut byte = [0u8; 1];
        let (first, fds) = stream
            .async_io(Interest::READABLE, || {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let msg = recvmsg(
                    stream,
                    &mut [IoSliceMut::new(&mut byte)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                )?;
                if msg.bytes == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the running node closed the connection",
                    ));
                }
                if msg.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(io::Error::other(
                        "descriptors were cut off in transit (too many open files?)",
                    ));
                }
                let mut fds = Vec::new();
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = message {
                        fds.extend(received);
                    }
                }
                Ok((byte[0], fds))
            })
            .await?;
        if first == FDS_MARKER {
            return Ok(Opening::Fds(fds));
        }
        match self.recv_after(vec![first]).await? {
            Some(message) => Ok(Opening::Message(message)),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the running node closed the connection",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        let state = Message::State(Box::new(State {
            pid: 7,
            bpf_object: "x".into(),
            pods: vec![],
            fds: vec![
                FdRole::NodeLock,
                FdRole::Map {
                    name: "SLUICE_CONFIG".into(),
                },
            ],
        }));
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            r#"{"state":{"pid":7,"bpf_object":"x","pods":[],"fds":[{"role":"node_lock"},{"role":"map","name":"SLUICE_CONFIG"}]}}"#
        );
        assert_eq!(
            serde_json::to_string(&Message::Ready {}).unwrap(),
            r#"{"ready":{}}"#
        );
        // A refusal is the admin socket's error line.
        let refused: Message = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert_eq!(refused, Message::Error("no".into()));
    }

    #[tokio::test]
    async fn descriptors_and_lines_travel_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let (sender, mut receiver) = (Conn::new(a), Conn::new(b));
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&file);
        sender.send_fds(&[fd, fd]).await.unwrap();
        let mut sender = sender;
        sender.send(&Message::Released {}).await.unwrap();
        match receiver.recv_opening().await.unwrap() {
            Opening::Fds(fds) => assert_eq!(fds.len(), 2),
            Opening::Message(m) => panic!("{m:?}"),
        }
        assert_eq!(receiver.recv().await.unwrap(), Some(Message::Released {}));

        // A refusal instead of descriptors.
        let (a, b) = UnixStream::pair().unwrap();
        let (mut sender, mut receiver) = (Conn::new(a), Conn::new(b));
        sender.send(&Message::Error("busy".into())).await.unwrap();
        match receiver.recv_opening().await.unwrap() {
            Opening::Message(m) => assert_eq!(m, Message::Error("busy".into())),
            Opening::Fds(_) => panic!("no descriptors were sent"),
        }
    }
}
