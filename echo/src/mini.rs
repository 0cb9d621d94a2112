//! Async model: the server on the `mini` runtime, one task per connection on one thread.
//!
//! The code has the shape of `threaded.rs`, an accept loop and a straight-line handler (read,
//! transform, write everything, repeat), but each connection is a *task* rather than a thread: a
//! future, that is a state machine holding the handler's local variables, polled by the runtime.
//! When a read or write would block, the socket's future returns `Pending` after leaving a waker
//! with the runtime's reactor, and the thread moves on to other tasks. The bookkeeping that
//! `spin.rs` and `select.rs` do by hand (which connection waits for what, where its pending bytes
//! are) is done by the compiler-generated state machine and the runtime.
//!
//! # What the thread does while waiting
//!
//! When no task can run, the runtime sleeps in its poller (`epoll_wait` with the default backend)
//! until a socket a task waits on becomes ready, then wakes exactly that task. No CPU is used
//! while idle.
//!
//! # Cost and limits
//!
//! A connection costs one small heap-allocated task (128 bytes, of which a poll touches the
//! first 64: see `Connection`), not a thread and not a buffer: an idle connection's task waits
//! for readability holding no buffer at all, and only once data is there does it borrow the
//! thread's one shared read buffer, for a read, a transform and a write that never wait
//! (`try_read`, `try_write`). Only bytes the kernel would not take right away are
//! copied into a buffer of the connection's own, until they are written. So tens of thousands
//! of idle connections cost a few hundred bytes each, and the busy ones share one hot buffer.
//! epoll reports only the ready sockets, so a turn costs in proportion to the work done, and
//! there is no `FD_SETSIZE` cap (only the open-files limit). Everything runs on one thread, so
//! this uses one core at most, and a task that computes for long without reaching an `.await`
//! holds up every other connection. Flow control is as in the threaded model: a task with
//! unsent bytes does not read.
//!
//! # Limits and failures
//!
//! Out of descriptors, the accept loop sheds the waiting clients ([`Shedder`]).
//! `--max-connections` is a counter checked at accept, which each task's guard decrements;
//! `--idle-timeout` is a deadline (`within`) around every wait to read and every wait to write.
//!
//! Inside this module `mini` would name the runtime crate anyway; the paths say `::mini` so that
//! nobody has to remember that this file is itself called `mini`.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use log::{debug, info, warn};

use crate::options::{self, ConnOptions, OpenCount};
use crate::shed::{Next, Shedder};
use crate::transform;
use crate::BUF_SIZE;

/// The runtime to serve on: on `backend` if given, else the runtime's default (`MINI_BACKEND`,
/// else the best compiled in, falling back from uring to epoll where io_uring is refused). Made
/// before the address is announced, so that a backend the system refuses is an error at once.
pub fn runtime(backend: Option<::mini::Backend>) -> io::Result<::mini::Runtime> {
    let mut builder = ::mini::Runtime::builder();
    if let Some(backend) = backend {
        builder = builder.backend(backend);
    }
    builder.build()
}

/// Serves echo on `listener` until the process exits, on `runtime` (if `None`, a new one with
/// the default backend).
pub fn serve(
    listener: std::net::TcpListener,
    runtime: Option<::mini::Runtime>,
    upper: bool,
    opts: ConnOptions,
) -> io::Result<Infallible> {
    let runtime = match runtime {
        Some(runtime) => runtime,
        None => self::runtime(None)?,
    };
    info!("mini runtime on the {} backend", runtime.backend());
    #[cfg(feature = "uring")]
    if runtime.backend() == ::mini::Backend::Uring {
        return crate::mini_uring::serve(listener, runtime, upper, opts);
    }
    let mut gate = Gate::new(opts);
    runtime.block_on(async move {
        let listener = ::mini::net::TcpListener::from_std(listener)?;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(ended) = gate.admit(stream.as_fd(), peer) else { continue };
                    // Dropping the JoinHandle detaches the task: it runs on by itself.
                    let echo = handle(stream, upper, ended.idle_timeout);
                    ::mini::spawn(Connection { echo, ended });
                }
                // E.g. the select backend refusing a descriptor >= FD_SETSIZE: that one
                // connection is closed, the others are not disturbed. Out of descriptors, the
                // waiting clients are closed and the loop accepts again; with the table still
                // full that accept fails at once with nobody waiting (the runtime still counts
                // the listener as ready), and this task pauses. Only this task waits: the
                // connections keep being served.
                Err(e) => gate.accept_failed(&e, listener.as_fd()).await,
            }
        }
    })
}

/// What the accept loop decides about each connection, on either path (readiness here,
/// completions in `mini_uring`): the limits, the socket options, the shedding.
pub(crate) struct Gate {
    opts: ConnOptions,
    open: OpenCount,
    shedder: Shedder,
}

impl Gate {
    pub(crate) fn new(opts: ConnOptions) -> Gate {
        Gate { opts, open: OpenCount::default(), shedder: Shedder::new() }
    }

    /// Admits the connection just accepted from `peer`, or refuses it (past
    /// `--max-connections`, or its socket options cannot be set): the caller then drops it,
    /// which closes it. An admitted connection counts as open while its `Ended` lives; only
    /// what the task needs at its end is boxed into it, so that the task itself stays small.
    pub(crate) fn admit(&mut self, fd: BorrowedFd<'_>, peer: SocketAddr) -> Option<Box<Ended>> {
        self.shedder.accepted();
        if self.opts.refuse(self.open.get(), peer) {
            return None;
        }
        if let Err(e) = self.opts.apply(fd) {
            warn!("cannot set up {peer}, closing it: {e}");
            return None;
        }
        debug!("accepted {peer}");
        let idle_timeout = self.opts.idle_timeout;
        Some(Box::new(Ended { peer, idle_timeout, _counted: self.open.enter() }))
    }

    /// Handles a failed accept on `listener`: sheds the waiting clients when out of
    /// descriptors, and pauses accepting when nothing else helps.
    pub(crate) async fn accept_failed(&mut self, e: &io::Error, listener: BorrowedFd<'_>) {
        if self.shedder.accept_failed(e, listener) == Next::Pause {
            ::mini::time::sleep(crate::ACCEPT_PAUSE).await;
        }
    }
}

/// Echoes one connection until the peer closes its sending side. Dropping `stream` closes it.
/// With an idle timeout, each wait for data and each wait to write must end within it, or the
/// connection ends with a `TimedOut` error.
///
/// An `async move` block rather than an `async fn`: an `async fn` keeps its arguments twice in
/// its state (as passed, and moved into its body), the block uses what it captured in place.
/// The whole state is 64 bytes: the stream, the two settings, and the future being awaited.
#[expect(clippy::manual_async_fn, reason = "an `async fn` keeps its arguments twice")]
fn handle(
    mut stream: ::mini::net::TcpStream,
    upper: bool,
    idle_timeout: Option<Duration>,
) -> impl Future<Output = io::Result<()>> {
    async move {
        loop {
            // Waits holding no buffer: this is all an idle connection costs.
            within(idle_timeout, stream.readable()).await?;
            let unsent =
                match SHARED_BUF.with(|buf| echo_now(&stream, &mut buf.borrow_mut(), upper))? {
                    Echoed::Closed => return Ok(()),
                    Echoed::All => continue,
                    Echoed::Partly(unsent) => unsent,
                };
            // The kernel's send buffer is full: keep the rest, and read no more until it is
            // sent. Boxed, with the bytes moved in: the rare case's state then takes no room in
            // every connection's task, which stays small and quick to get through.
            Box::pin(send_rest(&mut stream, unsent, idle_timeout)).await?;
        }
    }
}

/// What a connection needs only once it ends: who it was for the log line, and its place in
/// the count of open connections (given back when this is dropped).
pub(crate) struct Ended {
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) _counted: options::Open,
}

pin_project_lite::pin_project! {
    /// A connection's task: its echo loop, then a log line saying how it ended.
    ///
    /// Laid out for the cache. A busy server polls each connection's task once per message,
    /// thousands of connections apart, so every cache line a poll touches is likely a miss.
    /// The echo loop comes first (`repr(C)`), in the task's first line (the runtime's harness
    /// puts the future first too); what only the end needs is boxed behind one pointer, after
    /// it, so that a poll touches one line, not two (docs/benchmarks.md has the measurement).
    #[repr(C)]
    pub(crate) struct Connection<F> {
        #[pin]
        pub(crate) echo: F,
        pub(crate) ended: Box<Ended>,
    }
}

impl<F: Future<Output = io::Result<()>>> Future for Connection<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let result = std::task::ready!(this.echo.poll(cx));
        let Ended { peer, idle_timeout, .. } = **this.ended;
        match result {
            Ok(()) => debug!("closed {peer}"),
            Err(e) => match idle_timeout {
                Some(timeout) if options::is_timeout(&e) => options::log_idle(peer, timeout),
                _ => debug!("closing {peer} after an error: {e}"),
            },
        }
        Poll::Ready(())
    }
}

/// Writes all of `unsent`, each wait for room limited by the idle timeout.
async fn send_rest(
    stream: &mut ::mini::net::TcpStream,
    unsent: Vec<u8>,
    idle_timeout: Option<Duration>,
) -> io::Result<()> {
    let mut rest = &unsent[..];
    while !rest.is_empty() {
        match within(idle_timeout, stream.write(rest)).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            k => rest = &rest[k..],
        }
    }
    Ok(())
}

thread_local! {
    /// The one read buffer of the runtime's thread, lent to a task for a read-transform-write
    /// that never waits; so an idle connection holds none.
    static SHARED_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
}

/// What [`echo_now`] managed.
enum Echoed {
    /// The peer closed its sending side.
    Closed,
    /// Everything read (maybe nothing: the readiness was stale) was written.
    All,
    /// The kernel took only part of the reply: the rest, to send before reading again.
    Partly(Vec<u8>),
}

/// Reads what is there into `buf`, transforms it and writes what the kernel takes, without
/// waiting.
fn echo_now(stream: &::mini::net::TcpStream, buf: &mut [u8], upper: bool) -> io::Result<Echoed> {
    let n = match stream.try_read(buf) {
        Ok(0) => return Ok(Echoed::Closed),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Echoed::All),
        Err(e) => return Err(e),
    };
    transform::apply(&mut buf[..n], upper);
    let written = match stream.try_write(&buf[..n]) {
        Ok(k) => k,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    Ok(if written == n { Echoed::All } else { Echoed::Partly(buf[written..n].to_vec()) })
}

/// Runs `op`, giving up with a `TimedOut` error after `limit` if there is one.
///
/// A plain enum rather than an `async fn`: without a limit it is `op` itself plus a tag,
/// instead of one more state machine around it. The server polls it once per message, so a
/// smaller, flatter future means fewer cache lines touched per connection. With a limit, the
/// timer's state is boxed, so that it does not make every connection's task bigger (and push
/// the untimed server's state onto a second line): a timed server pays an allocation per wait,
/// next to the timer it sets and clears per wait anyway.
pub(crate) fn within<F: Future<Output = io::Result<T>>, T>(
    limit: Option<Duration>,
    op: F,
) -> Within<F> {
    match limit {
        None => Within::Unlimited { op },
        Some(limit) => Within::Limited { op: Box::pin(::mini::time::timeout(limit, op)) },
    }
}

pin_project_lite::pin_project! {
    /// See [`within`].
    #[project = WithinProj]
    pub(crate) enum Within<F> {
        Unlimited { #[pin] op: F },
        Limited { op: Pin<Box<::mini::time::Timeout<F>>> },
    }
}

impl<F: Future<Output = io::Result<T>>, T> Future for Within<F> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.project() {
            WithinProj::Unlimited { op } => op.poll(cx),
            WithinProj::Limited { op } => op.as_mut().poll(cx).map(|r| r?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout `Connection` describes: the echo loop's whole state fits one cache line.
    #[test]
    fn the_echo_loops_state_is_one_cache_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        ::mini::block_on(async move {
            let stream = ::mini::net::TcpStream::connect(addr).await.unwrap();
            let echo = handle(stream, false, Some(Duration::from_secs(1)));
            assert!(std::mem::size_of_val(&echo) <= 64, "{} bytes", std::mem::size_of_val(&echo));
        });
    }
}
