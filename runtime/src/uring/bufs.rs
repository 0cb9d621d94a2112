//! The runtime's provided buffer ring: the receive buffers of every completion-based stream,
//! lent to the kernel, and [`Chunk`], a buffer lent on to a task.
//!
//! A multishot receive names no buffer: when bytes arrive, the kernel takes the next buffer of
//! the group from this ring, fills it and names it (its id) in the completion. From then on the
//! buffer is the program's, as a [`Chunk`], until the chunk is dropped, which puts it back in
//! the ring. So an idle connection holds no buffer at all: memory follows the bytes in flight,
//! not the connections open. When the ring is empty, a receive ends with `ENOBUFS`; a stream
//! that saw it waits ([`BufRing::wait_for_buffer`]) until a chunk is dropped, then receives again.
//!
//! # Invariant: who owns a buffer
//!
//! Each buffer id is at any moment in exactly one place: in the ring (the kernel's to fill), or
//! in one [`Chunk`]. A chunk lent to a send operation is owned by that operation's slot until
//! its completion (see [`super::ops`]), so it goes back to the ring only when no operation
//! reads from it. `in_ring` is the ledger: a violation panics rather than mixing two
//! connections' bytes.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::Waker;

use io_uring::types::BufRingEntry;

use crate::sys::UringPoller;

/// The buffer group the receives select from (one ring per runtime).
pub(super) const GROUP: u16 = 0;
/// Bytes per buffer: the most one receive completion carries (the echo servers' read size).
pub(super) const SIZE: usize = 16 * 1024;
/// Buffers in the ring (a power of two): a message in flight for each of a thousand busy
/// connections. The memory is touched only as buffers are first used.
pub(super) const COUNT: u16 = 1024;

/// See the module docs.
pub(crate) struct BufRing {
    /// The ring's `COUNT` entries, page-aligned, shared with the kernel.
    entries: *mut BufRingEntry,
    /// `COUNT * SIZE` bytes, buffer `bid` at `bid * SIZE`.
    memory: *mut u8,
    inner: RefCell<Inner>,
}

struct Inner {
    /// The next tail to publish: entries before it are the kernel's.
    tail: u16,
    /// `true` while buffer `bid` is in the ring.
    in_ring: Vec<bool>,
    /// How many buffers are in the ring.
    free: usize,
    /// Streams whose receive ended with `ENOBUFS`, woken when a buffer comes back.
    starving: Vec<Waker>,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing").field("free", &self.inner.borrow().free).finish()
    }
}

impl BufRing {
    /// Allocates the buffers, puts them all in a new ring and registers it with `poller`.
    pub(super) fn new(poller: &UringPoller) -> io::Result<BufRing> {
        let memory = vec![0u8; usize::from(COUNT) * SIZE].leak().as_mut_ptr();
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc::alloc_zeroed(ring_layout()) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let inner =
            Inner { tail: 0, in_ring: vec![false; COUNT.into()], free: 0, starving: vec![] };
        let bufs = BufRing { entries, memory, inner: RefCell::new(inner) };
        for bid in 0..COUNT {
            bufs.give_back(bid);
        }
        // SAFETY: `entries` points to COUNT page-aligned entries, freed only in `free`, which
        // runs after the ring is unregistered.
        unsafe { poller.register_buf_ring(entries as u64, COUNT, GROUP) }?;
        Ok(bufs)
    }

    /// Records that a completion handed buffer `bid` over, holding `len` bytes, as a chunk.
    pub(super) fn take(self: &Rc<Self>, bid: u16, len: usize) -> Chunk {
        let mut inner = self.inner.borrow_mut();
        let in_ring = &mut inner.in_ring[usize::from(bid)];
        assert!(*in_ring, "buffer {bid} handed over twice");
        *in_ring = false;
        inner.free -= 1;
        Chunk { bufs: self.clone(), bid, len: len.min(SIZE) as u32 }
    }

    /// How many buffers the kernel can fill now.
    pub(super) fn free(&self) -> usize {
        self.inner.borrow().free
    }

    /// Leaves `waker` to be woken when a buffer comes back.
    pub(super) fn wait_for_buffer(&self, waker: &Waker) {
        self.inner.borrow_mut().starving.push(waker.clone());
    }

    /// Puts buffer `bid` back in the ring; wakes the streams starved of buffers.
    fn give_back(&self, bid: u16) {
        let mut inner = self.inner.borrow_mut();
        let in_ring = &mut inner.in_ring[usize::from(bid)];
        assert!(!*in_ring, "buffer {bid} given back twice");
        *in_ring = true;
        inner.free += 1;
        let index = usize::from(inner.tail & (COUNT - 1));
        // SAFETY: `index` < COUNT, so the entry lies within the ring. The kernel reads only
        // entries before the published tail, and this one is at it, so it is ours to write. The
        // setters write address, length and id, never the tail the first entry doubles as.
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(self.memory as u64 + u64::from(bid) * SIZE as u64);
        entry.set_len(SIZE as u32);
        entry.set_bid(bid);
        inner.tail = inner.tail.wrapping_add(1);
        // SAFETY: the tail is a u16 of the ring's first entry, valid and aligned as long as the
        // ring; the kernel only reads it; an AtomicU16 has the layout of a u16.
        let tail = unsafe { &*BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        // Release: the kernel must see the entry written before the tail moves past it.
        tail.store(inner.tail, Ordering::Release);
        let starving = std::mem::take(&mut inner.starving);
        drop(inner);
        starving.into_iter().for_each(Waker::wake);
    }

    /// Frees the memory, if the kernel can no longer touch it: `idle` (no operation of the
    /// driver is in flight, so no receive may be filling a buffer) and the ring unregistered.
    /// Otherwise the memory is leaked, which is safe.
    pub(super) fn free_memory(&self, poller: &UringPoller, idle: bool) {
        if !idle || poller.unregister_buf_ring(GROUP).is_err() {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the kernel reads them no more (the ring
        // is unregistered and no receive is in flight) and no chunk exists (each holds an `Rc`
        // of this ring, which is being dropped).
        unsafe {
            alloc::dealloc(self.entries.cast(), ring_layout());
            drop(Vec::from_raw_parts(
                self.memory,
                usize::from(COUNT) * SIZE,
                usize::from(COUNT) * SIZE,
            ));
        }
    }
}

fn ring_layout() -> Layout {
    Layout::from_size_align(usize::from(COUNT) * size_of::<BufRingEntry>(), 4096)
        .expect("a valid layout")
}

/// Received bytes in a buffer of the runtime's ring, lent to the task; dropping it gives the
/// buffer back to the kernel. Send it back as it is with
/// [`TcpStream::write_all`](super::TcpStream::write_all), or copy out what you need.
pub struct Chunk {
    bufs: Rc<BufRing>,
    bid: u16,
    len: u32,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").field("bid", &self.bid).field("len", &self.len).finish()
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the buffer is this chunk's (the ledger says so, see the module docs): the
        // kernel does not write to it, and `len` <= SIZE bytes lie within the memory, which
        // lives as long as the ring this chunk holds.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs.memory.add(usize::from(self.bid) * SIZE),
                self.len as usize,
            )
        }
    }
}

impl DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the buffer.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs.memory.add(usize::from(self.bid) * SIZE),
                self.len as usize,
            )
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.bufs.give_back(self.bid);
    }
}
