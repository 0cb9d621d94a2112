//! The list of sockets a task is waiting on, for the level-triggered backends (poll, select).
//!
//! Those backends hand the kernel the whole set on every wait, so the set is kept as small as it
//! can be: a socket is in it only while a task waits on it, for the directions it waits in.
//! The reactor keeps it in step through `set_interest`. Order does not matter, so removal swaps
//! the last entry into the hole and stays O(1).

use std::collections::HashMap;
use std::os::fd::RawFd;

use super::Interest;

/// One watched socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watched {
    pub(crate) fd: RawFd,
    pub(crate) token: u64,
    pub(crate) interest: Interest,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Watchlist {
    entries: Vec<Watched>,
    index_of: HashMap<RawFd, usize>,
}

impl Watchlist {
    /// Sets the directions watched for `fd`; no direction removes it from the list.
    pub(crate) fn set(&mut self, fd: RawFd, token: u64, interest: Interest) {
        let watched = interest.read || interest.write;
        match (self.index_of.get(&fd).copied(), watched) {
            (Some(i), true) => self.entries[i] = Watched { fd, token, interest },
            (Some(_), false) => self.remove(fd),
            (None, true) => {
                self.index_of.insert(fd, self.entries.len());
                self.entries.push(Watched { fd, token, interest });
            }
            (None, false) => {}
        }
    }

    pub(crate) fn remove(&mut self, fd: RawFd) {
        let Some(i) = self.index_of.remove(&fd) else { return };
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.index_of.insert(moved.fd, i);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Watched> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: Interest = Interest { read: true, write: false };
    const NONE: Interest = Interest { read: false, write: false };

    #[test]
    fn holds_exactly_the_sockets_with_interest() {
        let mut list = Watchlist::default();
        for fd in 3..8 {
            list.set(fd, fd as u64 * 10, READ);
        }
        list.set(4, 40, NONE);
        list.remove(6);
        list.remove(99);
        list.set(7, 71, Interest { read: true, write: true });
        let mut seen: Vec<_> = list.iter().map(|w| (w.fd, w.token, w.interest.write)).collect();
        seen.sort();
        assert_eq!(seen, [(3, 30, false), (5, 50, false), (7, 71, true)]);
        for (i, w) in list.entries.iter().enumerate() {
            assert_eq!(list.index_of[&w.fd], i, "the index follows every move");
        }
    }
}
