//! Connection threads: each connection of the HTTP engine is served, once decided, until
//! it closes on one thread that runs a single-threaded tokio runtime of its own (nginx's
//! worker model).
//! Its HTTP server, its upstream connection's task, its timers and its tunnels all live
//! on that thread: no task moves between threads, no wake-up crosses one, and memory is
//! freed by the thread that allocated it. On the 2-CPU benchmark machine that took
//! about a sixth off the node's CPU per HTTP request against one work-stealing runtime
//! (docs/benchmarks.md).
//!
//! The accept loops, the connections' decisions, spliced (L4) connections, the DNS proxy,
//! the admin socket and reloads stay on the node's main runtime: a spliced connection
//! has little per-byte work for a thread of its own to save, and its move would cost a
//! cross-thread hand-off per connect. A connection goes to the thread that holds the
//! fewest live ones (ties taken in turn), so long-lived connections do not pile up.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::debug;

/// Why the connection threads could not start, or a connection could not move to one.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("starting the runtime of connection thread {index}: {source}")]
    Runtime {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("starting connection thread {index}: {source}")]
    Thread {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("taking the connection off the accepting runtime: {0}")]
    Detach(#[source] std::io::Error),
}

/// The node's connection threads; see the module documentation.
#[derive(Debug)]
pub struct ConnWorkers {
    workers: Vec<Worker>,
    /// Where the search for the least busy thread starts: turns, for ties.
    turn: AtomicUsize,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Connections dispatched to this thread and not yet ended.
    live: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ConnWorkers {
    /// Starts `n` connection threads (at least one), named `sluice-conn-<i>`.
    pub fn start(n: usize) -> Result<Self, WorkerError> {
        let workers = (0..n.max(1))
            .map(Worker::start)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            workers,
            turn: AtomicUsize::new(0),
        })
    }

    /// Live connections per thread, in thread order.
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.live.load(Ordering::Relaxed))
            .collect()
    }

    /// Moves `stream` (accepted on the calling runtime) to the least busy thread and
    /// serves it there with `serve`. The connection counts as live on that thread until
    /// the future ends or is dropped.
    pub fn dispatch<F, Fut>(&self, stream: TcpStream, serve: F) -> Result<(), WorkerError>
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std = stream.into_std().map_err(WorkerError::Detach)?;
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let worker = &self.workers[least_busy(&self.loads(), start)];
        let live = Live::enter(&worker.live);
        worker.handle.spawn(async move {
            let _live = live;
            // Registered with this thread's reactor: its readiness wakes this thread.
            match TcpStream::from_std(std) {
                Ok(stream) => serve(stream).await,
                Err(e) => debug!(error = %e, "registering a connection on its thread failed"),
            }
        });
        Ok(())
    }

    /// Stops every thread and waits for them: the connections they still serve are
    /// dropped (closed), which releases what those held. Blocks briefly.
    pub fn shutdown(mut self) {
        self.tell_to_stop();
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// [`shutdown`](Self::shutdown) from async code, once nothing else holds the
    /// threads (the accept loops have ended); otherwise the last holder's drop stops
    /// them without waiting.
    pub async fn stop(workers: Arc<Self>) {
        if let Some(w) = Arc::into_inner(workers) {
            let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
        }
    }

    fn tell_to_stop(&mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

impl Drop for ConnWorkers {
    /// Without `shutdown`: the threads are told to stop, not waited for.
    fn drop(&mut self) {
        self.tell_to_stop();
    }
}

impl Worker {
    fn start(index: usize) -> Result<Self, WorkerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| WorkerError::Runtime { index, source })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-conn-{index}"))
            .spawn(move || {
                // Serves what is spawned onto it until told to stop (or the node is
                // gone); dropping the runtime then drops the tasks it still has.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                drop(runtime);
            })
            .map_err(|source| WorkerError::Thread { index, source })?;
        Ok(Self {
            handle,
            live: Arc::new(AtomicUsize::new(0)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// One live connection on a thread: counted from dispatch, uncounted when dropped.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The index of the smallest load; among equals, the first at or after `start`
/// (wrapping), so that ties are taken in turn.
fn least_busy(loads: &[usize], start: usize) -> usize {
    let n = loads.len();
    if n == 0 {
        return 0;
    }
    (0..n)
        .map(|k| (start + k) % n)
        .min_by_key(|&i| loads[i])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_least_busy_thread_gets_the_connection_and_ties_rotate() {
        let cases: &[(&[usize], usize, usize)] = &[
            (&[0], 0, 0),
            (&[0], 7, 0),
            (&[0, 0], 0, 0),
            (&[0, 0], 1, 1),
            (&[0, 0], 2, 0),
            (&[3, 1], 0, 1),
            (&[1, 3], 1, 0),
            (&[2, 1, 1], 0, 1),
            (&[2, 1, 1], 2, 2),
            (&[2, 1, 1], 3, 1),
            (&[5, 0, 9, 0], 3, 3),
        ];
        for &(loads, start, want) in cases {
            assert_eq!(least_busy(loads, start), want, "{loads:?} from {start}");
        }
    }

    /// An echo of one line over a real socket, served on a connection thread: the
    /// stream is usable there, the connection counts as live while served and not after,
    /// and a second one goes to the other, idle, thread.
    #[tokio::test]
    async fn a_connection_is_served_on_a_thread_of_its_own_and_counted_while_live() {
        let workers = Arc::new(ConnWorkers::start(2).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (names_tx, mut names) = tokio::sync::mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for _ in 0..2 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let names_tx = names_tx.clone();
            workers
                .dispatch(accepted, move |mut s| async move {
                    let name = std::thread::current().name().map(str::to_owned);
                    let _ = names_tx.send(name);
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                    }
                })
                .unwrap();
            client.write_all(b"hello").await.unwrap();
            let mut echoed = [0u8; 5];
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(&echoed, b"hello");
            clients.push(client);
        }
        let first = names.recv().await.unwrap();
        let second = names.recv().await.unwrap();
        assert_ne!(first, second, "two connections, two idle threads");
        for name in [first, second] {
            assert!(
                name.as_deref()
                    .is_some_and(|n| n.starts_with("sluice-conn-")),
                "{name:?}"
            );
        }
        // Both served futures have ended: nothing counts as live any more.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while workers.loads().iter().sum::<usize>() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                workers.loads()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            Arc::strong_count(&workers),
            1,
            "the workers are still shared"
        );
        ConnWorkers::stop(workers).await;
    }

    /// Stopping drops what the threads still serve: its socket closes and whatever the
    /// connection held is released.
    #[tokio::test]
    async fn shutdown_drops_the_connections_still_served() {
        let workers = ConnWorkers::start(1).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let held = Arc::new(());
        let in_task = Arc::clone(&held);
        workers
            .dispatch(accepted, move |mut s| async move {
                let _held = in_task;
                let mut buf = [0u8; 1];
                let _ = s.read(&mut buf).await; // waits for ever: the client never writes
            })
            .unwrap();
        assert_eq!(workers.loads(), [1]);
        tokio::task::spawn_blocking(move || workers.shutdown())
            .await
            .unwrap();
        assert_eq!(Arc::strong_count(&held), 1, "the task's state is released");
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the server side closes")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
