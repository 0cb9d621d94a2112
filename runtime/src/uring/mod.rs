//! Completion-based sockets (feature `uring`, on a runtime whose backend is uring): the kernel
//! does the copying, and the program is told when it is *done*.
//!
//! The readiness sockets of [`crate::net`] ask "may I read?" and then read, two steps and a
//! system call each. Here a socket hands the kernel operations instead, and they ride in the
//! reactor's one `io_uring_enter` per turn with everything else queued in that turn:
//!
//! - [`TcpListener::accept`]: one multishot accept per listener, armed on the first call; every
//!   connection it accepts waits in the listener's queue.
//! - [`TcpStream::recv`]: one multishot receive per stream, into the runtime's **provided buffer
//!   ring** (`uring/bufs.rs`): the kernel picks a buffer when bytes arrive, so an idle connection holds
//!   none. Each completion becomes a [`Chunk`] (a buffer lent to the task, given back when
//!   dropped) in the *stream's* queue, not the future's: a `recv` future dropped by a timeout
//!   loses nothing, the next `recv` finds the chunk. Flow control: a stream holding
//!   [`MAX_QUEUED`] chunks cancels its receive, and arms it again when a `recv` finds the queue
//!   empty. A receive ended by `ENOBUFS` (the ring ran dry) is armed again when a buffer comes
//!   back.
//! - [`TcpStream::write_all`]: a send of an *owned* buffer (a [`Chunk`], to send back what came
//!   in without a copy, or a `Vec<u8>`), given back with the result, tokio-uring style; a short
//!   send is resubmitted for the rest.
//! - [`TcpStream::connect`] is an `IORING_OP_CONNECT`; [`TcpStream::shutdown`] is the plain
//!   system call (rare, and with nothing to wait for). Dropping a socket queues its cancellations
//!   and then an `IORING_OP_CLOSE`, in that order in the submission queue, so that no operation
//!   queued before it can find the descriptor number reused. [`TcpStream::close`] also waits
//!   for the receive to end.
//!
//! Why a buffer ring for receives rather than `read(buf) -> (result, buf)` with a buffer per
//! read (monoio's and tokio-uring's main API): a read posted with its own buffer pins that
//! buffer for as long as the peer is silent, so 10 000 idle connections would hold 10 000
//! buffers. With the ring, memory follows the bytes in flight; the multishot receive also needs
//! no resubmission per message.
//!
//! # Ownership: the one rule
//!
//! The kernel may use an operation's memory until its completion. Every operation lives in a
//! slot of the op table (`uring/ops.rs`) that owns that memory until the last completion, whatever happens
//! to the future that asked for it: see `ops.rs` (and its model test) for the argument.
//!
//! # Where io_uring is unavailable
//!
//! These sockets exist only on a runtime whose backend is uring: on another, `bind`,
//! `connect` and `from_std` fail with `Unsupported`. A program that must run everywhere asks
//! [`Runtime::backend`](crate::Runtime::backend) and uses [`crate::net`] otherwise (as
//! `echo --runtime mini` does): the runtime falls back to epoll where the kernel refuses a
//! ring, so that choice is made at run time.

mod bufs;
mod listener;
mod ops;
mod stream;

pub use bufs::Chunk;
pub use listener::TcpListener;
pub use stream::{IoBuf, TcpStream};

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue};

use crate::reactor::Reactor;
use crate::slab::Key;
use crate::sys::{OpCompletion, UringPoller, OP_TAG, REMOVE_TOKEN};
use bufs::BufRing;
use ops::{Delivery, OpTable};

/// Chunks a stream may hold before its receive is cancelled (flow control).
pub const MAX_QUEUED: usize = 4;

/// What an operation's slot owns until the kernel is done with it.
pub(crate) enum Held {
    /// Nothing (a multishot operation).
    Nothing,
    /// A received buffer being sent back.
    Chunk(Chunk),
    /// Bytes being sent.
    Bytes(Vec<u8>),
    /// The address a connect reads.
    Addr(Box<crate::net::socket::RawAddr>),
}

/// Where the completions of a multishot operation go (the listener's or the stream's queue).
pub(crate) trait Sink {
    /// One completion. Returns true to have the operation cancelled (flow control).
    fn complete(&self, res: i32, flags: u32, bufs: &Rc<BufRing>) -> bool;
    /// The operation's last completion has come: it is no longer armed.
    fn ended(&self);
}

/// The op table and the buffer ring of a runtime on the uring backend, made on first use.
pub(crate) struct Driver {
    table: RefCell<OpTable<Held, Rc<dyn Sink>>>,
    bufs: Rc<BufRing>,
    /// Completions taken from the poller, reused between turns.
    done: RefCell<Vec<OpCompletion>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("ops", &self.table.borrow().len()).finish_non_exhaustive()
    }
}

impl Driver {
    /// Checks that the kernel has the operations used here and registers the buffer ring.
    pub(crate) fn new(poller: &UringPoller) -> io::Result<Driver> {
        let codes = [
            opcode::AcceptMulti::CODE,
            opcode::RecvMulti::CODE,
            opcode::Send::CODE,
            opcode::Connect::CODE,
            opcode::Close::CODE,
        ];
        if !poller.supports(&codes)? {
            let what = "the kernel's io_uring lacks accept, recv, send, connect or close";
            return Err(io::Error::new(io::ErrorKind::Unsupported, what));
        }
        let bufs = BufRing::new(poller).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot register io_uring's buffer ring: {e}"))
        })?;
        Ok(Driver {
            table: RefCell::new(OpTable::new()),
            bufs: Rc::new(bufs),
            done: Default::default(),
        })
    }

    /// Queues `entry` as a one-shot operation owning `held`, or gives `held` back if it could
    /// not be queued.
    ///
    /// # Safety
    ///
    /// Whatever `entry` points to must be owned by `held` (moving `held` must not move it) or
    /// outlive the operation otherwise; the descriptor must stay open until the entry is
    /// submitted (sockets close through the ring, after their operations: see the module docs).
    pub(crate) unsafe fn submit(
        &self,
        poller: &UringPoller,
        entry: squeue::Entry,
        held: Held,
    ) -> Result<Key, (io::Error, Held)> {
        let key = self.table.borrow_mut().insert(held);
        // SAFETY: the slot now owns the memory `entry` points to and keeps it until the last
        // completion (see `ops`); the caller guarantees the rest.
        match unsafe { poller.push_op(&entry.user_data(OP_TAG | key.to_u64())) } {
            Ok(()) => {
                trace!("uring: queued op {:#x} ({} in flight)", key.to_u64(), self.in_flight());
                Ok(key)
            }
            Err(e) => Err((e, self.table.borrow_mut().remove_unsubmitted(key).expect("inserted"))),
        }
    }

    /// Queues `entry` as a multishot operation whose completions go to `sink`.
    ///
    /// # Safety
    ///
    /// As for [`submit`](Self::submit); multishot entries here point to no memory of ours.
    pub(crate) unsafe fn submit_multi(
        &self,
        poller: &UringPoller,
        entry: squeue::Entry,
        sink: Rc<dyn Sink>,
    ) -> io::Result<Key> {
        let key = self.table.borrow_mut().insert_multi(sink, Held::Nothing);
        // SAFETY: the caller's guarantee.
        match unsafe { poller.push_op(&entry.user_data(OP_TAG | key.to_u64())) } {
            Ok(()) => {
                trace!("uring: queued multishot op {:#x}", key.to_u64());
                Ok(key)
            }
            Err(e) => {
                self.table.borrow_mut().remove_unsubmitted(key);
                Err(e)
            }
        }
    }

    /// The poll of a one-shot operation's future: its result and memory, once completed.
    pub(crate) fn poll(&self, key: Key, cx: &Context<'_>) -> Poll<(i32, Held)> {
        match self.table.borrow_mut().poll(key, cx.waker()) {
            Some((res, _, held)) => Poll::Ready((res, held)),
            None => Poll::Pending,
        }
    }

    /// A one-shot operation's future is dropped: cancel it if the kernel still has it.
    pub(crate) fn orphan(&self, poller: &UringPoller, key: Key) {
        if self.table.borrow_mut().orphan(key) {
            self.cancel(poller, key);
        }
    }

    /// Queues a cancellation of operation `key`; its slot is freed by its last completion.
    pub(crate) fn cancel(&self, poller: &UringPoller, key: Key) {
        trace!("uring: cancelling op {:#x}", key.to_u64());
        let entry = opcode::AsyncCancel::new(OP_TAG | key.to_u64()).build().user_data(REMOVE_TOKEN);
        // SAFETY: a cancellation points to no memory; it names the operation by its user_data.
        if let Err(e) = unsafe { poller.push_op(&entry) } {
            // The operation then runs to its natural end; its slot still waits for that.
            log::error!("mini: cannot cancel an io_uring operation: {e}");
        }
    }

    /// Queues the close of `fd` after every entry queued before (so none of them can find the
    /// number reused), and submits at once: the peer learns of the close now, not at the next
    /// turn (a runtime may return from `block_on` and never turn again). Closes at once if the
    /// entry cannot be queued.
    pub(crate) fn close(&self, poller: &UringPoller, fd: std::os::fd::RawFd) {
        trace!("uring: closing fd {fd} through the ring");
        let entry = opcode::Close::new(io_uring::types::Fd(fd)).build().user_data(REMOVE_TOKEN);
        // SAFETY: a close points to no memory; the descriptor is ours and used no more.
        let queued = unsafe { poller.push_op(&entry) };
        if queued.is_ok() {
            if let Err(e) = poller.flush() {
                log::error!("mini: cannot submit the close of fd {fd}: {e}");
            }
        } else {
            // SAFETY: as above; the queue is full even after a submit, so every entry queued
            // before has been submitted (and has resolved its descriptor).
            unsafe { libc::close(fd) };
        }
    }

    /// Hands the completions of the last wait to the operations' futures and sinks.
    pub(crate) fn dispatch(&self, poller: &UringPoller) {
        let mut done = self.done.borrow_mut();
        poller.take_op_completions(&mut done);
        for (user_data, res, flags) in done.drain(..) {
            let key = Key::from_u64(user_data & !OP_TAG);
            trace!("uring: op {:#x} completed: {res} (flags {flags:#x})", key.to_u64());
            let delivery = self.table.borrow_mut().complete(key, res, flags);
            match delivery {
                Delivery::Wake(waker) => waker.into_iter().for_each(Waker::wake),
                Delivery::Sink(sink, ended) => {
                    if sink.complete(res, flags, &self.bufs) && !ended {
                        self.cancel(poller, key);
                    }
                    if ended {
                        sink.ended();
                    }
                }
                Delivery::Nothing => {}
            }
        }
    }

    /// Operations in flight, orphans included.
    fn in_flight(&self) -> usize {
        self.table.borrow().len()
    }

    /// The buffer ring.
    pub(crate) fn bufs(&self) -> &Rc<BufRing> {
        &self.bufs
    }

    /// Frees the buffer memory if the kernel can no longer touch it (called as the reactor, and
    /// its ring, go away).
    pub(crate) fn shut_down(&self, poller: &UringPoller) {
        // The cancellations of the last dropped futures, which no turn will submit.
        let _ = poller.flush();
        let idle = self.table.borrow().len() == 0 && Rc::strong_count(&self.bufs) == 1;
        self.bufs.free_memory(poller, idle);
    }
}

/// The ring and driver of the current runtime, or `Unsupported` if its backend is not uring.
pub(crate) fn driver_of(reactor: &Reactor) -> io::Result<(&UringPoller, &Driver)> {
    reactor.uring_driver()
}
