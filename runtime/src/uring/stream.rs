//! [`TcpStream`]: a connection whose receives arrive as chunks from the buffer ring and whose
//! sends own their buffers (see the [module docs](super)).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, opcode, types};

use super::bufs::{BufRing, GROUP};
use super::{driver_of, Chunk, Held, Sink, MAX_QUEUED};
use crate::net::socket::RawAddr;
use crate::reactor::Reactor;
use crate::slab::Key;

/// A TCP connection on the completion path. Receive with [`recv`](Self::recv), send with
/// [`write_all`](Self::write_all).
///
/// ```
/// # if mini::Runtime::new()?.backend() != mini::Backend::Uring { return Ok(()) }
/// use mini::uring::{TcpListener, TcpStream};
///
/// mini::Runtime::builder().backend(mini::Backend::Uring).build()?.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///     let (res, _) = client.write_all(b"ping".to_vec()).await;
///     res?;
///     let chunk = server.recv().await?.expect("not the end");
///     assert_eq!(&chunk[..], b"ping");
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    fd: RawFd,
    reactor: Rc<Reactor>,
    inbox: Rc<Inbox>,
}

/// What the stream's multishot receive delivers, kept for the next `recv` (shared with the
/// operation's slot, which may outlive the stream until its last completion).
#[derive(Default)]
struct Inbox {
    chunks: RefCell<VecDeque<Chunk>>,
    /// The end of the stream (0) or an error (`-errno`), reported after the chunks before it.
    end: Cell<Option<i32>>,
    /// The armed receive, if any.
    recv: Cell<Option<Key>>,
    /// Its cancellation is queued (flow control).
    cancelling: Cell<bool>,
    /// It ended with `ENOBUFS`: arm again once a buffer is back.
    starved: Cell<bool>,
    /// The stream is gone: chunks are given back at once.
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Inbox {
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl Sink for Inbox {
    fn complete(&self, res: i32, flags: u32, bufs: &Rc<BufRing>) -> bool {
        // A completion may name a buffer even with 0 bytes: it is ours to give back.
        let chunk = cqueue::buffer_select(flags).map(|bid| bufs.take(bid, res.max(0) as usize));
        match res {
            1.. if !self.closed.get() => {
                self.chunks.borrow_mut().extend(chunk);
            }
            1.. => {}
            0 => self.end.set(Some(0)),
            e if e == -libc::ENOBUFS => self.starved.set(true),
            e if e == -libc::ECANCELED => {}
            e => self.end.set(Some(e)),
        }
        self.wake();
        let full = self.chunks.borrow().len() >= MAX_QUEUED;
        if full && !self.cancelling.get() {
            self.cancelling.set(true);
            return true;
        }
        false
    }

    fn ended(&self) {
        self.recv.set(None);
        self.cancelling.set(false);
        self.wake();
    }
}

/// A buffer a send may own: its bytes stay where they are when it moves (the kernel keeps
/// their address). Implemented for [`Chunk`] and `Vec<u8>`.
pub trait IoBuf: sealed::Sealed + Sized {}

/// Sealed: nothing outside mini can name `Sealed`, so the private `Held` in its methods never
/// leaks, and no other type can promise a stable address it does not have.
#[expect(private_interfaces, reason = "the trait is sealed: see above")]
mod sealed {
    use super::{Chunk, Held};

    pub trait Sealed {
        fn into_held(self) -> Held;
        fn from_held(held: Held) -> Self;
    }

    impl Sealed for Chunk {
        fn into_held(self) -> Held {
            Held::Chunk(self)
        }
        fn from_held(held: Held) -> Self {
            match held {
                Held::Chunk(chunk) => chunk,
                _ => unreachable!("a send gives back what it was given"),
            }
        }
    }

    impl Sealed for Vec<u8> {
        fn into_held(self) -> Held {
            Held::Bytes(self)
        }
        fn from_held(held: Held) -> Self {
            match held {
                Held::Bytes(bytes) => bytes,
                _ => unreachable!("a send gives back what it was given"),
            }
        }
    }
}

impl IoBuf for Chunk {}
impl IoBuf for Vec<u8> {}

/// The bytes a [`Held`] send buffer holds.
fn bytes(held: &Held) -> &[u8] {
    match held {
        Held::Chunk(chunk) => chunk,
        Held::Bytes(bytes) => bytes,
        Held::Nothing | Held::Addr(_) => &[],
    }
}

/// A one-shot operation in flight: its result once it completes; dropped before, it is
/// cancelled (and its slot keeps the memory until the kernel's completion).
struct OpFuture<'a> {
    reactor: &'a Reactor,
    key: Option<Key>,
}

impl Future for OpFuture<'_> {
    type Output = (i32, Held);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, Held)> {
        let key = self.key.expect("polled after completion");
        let (_, driver) = driver_of(self.reactor).expect("the driver made the operation");
        let out = std::task::ready!(driver.poll(key, cx));
        self.key = None;
        Poll::Ready(out)
    }
}

impl Drop for OpFuture<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let (poller, driver) = driver_of(self.reactor).expect("the driver made the operation");
            driver.orphan(poller, key);
        }
    }
}

/// Queues a one-shot operation built by `entry` from the address of what `held` owns; the
/// future yields its result and `held` back. A failure to queue is the result.
fn start<'a>(
    reactor: &'a Reactor,
    held: Held,
    entry: impl FnOnce(&Held) -> io_uring::squeue::Entry,
) -> Result<OpFuture<'a>, (io::Error, Held)> {
    let (poller, driver) = match driver_of(reactor) {
        Ok(both) => both,
        Err(e) => return Err((e, held)),
    };
    let entry = entry(&held);
    // SAFETY: `entry` points only into memory `held` owns on the heap (a chunk's buffer, a
    // Vec's, a boxed address), which stays put when `held` moves into the slot; callers pass
    // the stream's descriptor, which is closed only through the ring, after this entry.
    let key = unsafe { driver.submit(poller, entry, held) }?;
    Ok(OpFuture { reactor, key: Some(key) })
}

impl TcpStream {
    /// Connects to `addr` (each address it resolves to in turn) with `IORING_OP_CONNECT`.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the runtime's backend is not uring.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match connect_one(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
    }

    /// Takes over a connected std stream (blocking or not: io_uring waits either way).
    ///
    /// # Errors
    ///
    /// `Unsupported` if the runtime's backend is not uring.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_fd(OwnedFd::from(stream))
    }

    pub(super) fn from_fd(fd: OwnedFd) -> io::Result<TcpStream> {
        let reactor = crate::runtime::current("a socket").reactor;
        driver_of(&reactor)?;
        Ok(TcpStream { fd: fd.into_raw_fd(), reactor, inbox: Rc::default() })
    }

    /// The next chunk of received bytes, in order; `None` at the end of the stream. Nothing is
    /// lost if the future is dropped before it completes: what arrives waits for the next call.
    pub fn recv(&mut self) -> impl Future<Output = io::Result<Option<Chunk>>> + '_ {
        poll_fn(|cx| self.poll_recv(cx))
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Chunk>>> {
        if !crate::coop::spend(cx) {
            return Poll::Pending;
        }
        let inbox = &self.inbox;
        if let Some(chunk) = inbox.chunks.borrow_mut().pop_front() {
            return Poll::Ready(Ok(Some(chunk)));
        }
        if let Some(end) = inbox.end.get() {
            return Poll::Ready(if end == 0 {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(-end))
            });
        }
        if inbox.recv.get().is_none() {
            let (poller, driver) = driver_of(&self.reactor)?;
            if inbox.starved.get() && driver.bufs().free() == 0 {
                driver.bufs().wait_for_buffer(cx.waker());
                return Poll::Pending;
            }
            inbox.starved.set(false);
            let entry = opcode::RecvMulti::new(types::Fd(self.fd), GROUP).build();
            // SAFETY: a multishot receive points to no memory of ours (the kernel takes
            // buffers from the registered ring); the descriptor is closed only through the
            // ring, after this entry.
            let key = unsafe { driver.submit_multi(poller, entry, self.inbox.clone()) }?;
            inbox.recv.set(Some(key));
        }
        let mut waker = inbox.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Sends all of `buf`, resubmitting what a short send left; gives `buf` back with the
    /// result. Dropped before it completes, the send is cancelled, and its buffer is freed
    /// only once the kernel says it is done with it (what was sent by then is unknown).
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let mut held = buf.into_held();
        let mut sent = 0;
        let fd = types::Fd(self.fd);
        while sent < bytes(&held).len() {
            let op = start(&self.reactor, held, |held| {
                let rest = &bytes(held)[sent..];
                let len = rest.len().min(u32::MAX as usize) as u32;
                opcode::Send::new(fd, rest.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
            });
            let res;
            (res, held) = match op {
                Ok(op) => op.await,
                Err((e, held)) => return (Err(e), B::from_held(held)),
            };
            match res {
                0 => return (Err(io::ErrorKind::WriteZero.into()), B::from_held(held)),
                1.. => sent += res as usize,
                e if e == -libc::EINTR => {}
                e => return (Err(io::Error::from_raw_os_error(-e)), B::from_held(held)),
            }
        }
        (Ok(()), B::from_held(held))
    }

    /// Shuts down one or both directions (the plain system call: nothing to wait for).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: a plain call on a descriptor this stream owns.
        crate::sys::check(unsafe { libc::shutdown(self.fd, how) }).map(drop)
    }

    /// Closes the stream once its receive has ended (cancelled now), so no operation of it is
    /// in flight; dropping the stream does the same without waiting.
    pub async fn close(self) {
        if let (Some(key), Ok((poller, driver))) = (self.inbox.recv.get(), driver_of(&self.reactor))
        {
            if !self.inbox.cancelling.replace(true) {
                driver.cancel(poller, key);
            }
        }
        poll_fn(|cx| {
            if self.inbox.recv.get().is_none() {
                return Poll::Ready(());
            }
            *self.inbox.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|s| s.peer_addr())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|s| s.local_addr())
    }

    fn with_std<R>(&self, f: impl FnOnce(&std::net::TcpStream) -> R) -> R {
        // SAFETY: the descriptor is open for as long as `self`; ManuallyDrop keeps the
        // temporary std stream from closing it.
        let std = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
        f(&std)
    }
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain arguments; the new descriptor is owned at once.
    let fd = crate::sys::check(unsafe {
        libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `socket` just returned it, and nothing else owns it.
    let stream = TcpStream::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })?;
    let held = Held::Addr(Box::new(RawAddr::from(addr)));
    let op = start(&stream.reactor, held, |held| {
        let Held::Addr(raw) = held else { unreachable!() };
        let (ptr, len) = raw.as_ptr();
        opcode::Connect::new(types::Fd(fd), ptr, len).build()
    })
    .map_err(|(e, _)| e)?;
    match op.await.0 {
        0 => Ok(stream),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let inbox = &self.inbox;
        inbox.closed.set(true);
        inbox.chunks.borrow_mut().clear();
        match driver_of(&self.reactor) {
            Ok((poller, driver)) => {
                if let Some(key) = inbox.recv.get() {
                    if !inbox.cancelling.replace(true) {
                        driver.cancel(poller, key);
                    }
                }
                driver.close(poller, self.fd);
            }
            // SAFETY: the descriptor is ours; without a driver no operation ever used it.
            Err(_) => drop(unsafe { OwnedFd::from_raw_fd(self.fd) }),
        }
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream").field("fd", &self.fd).finish_non_exhaustive()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is open for as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
