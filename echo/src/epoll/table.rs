//! The connection table of the epoll server: a slab whose index is the connection's epoll token,
//! and the invariant that makes a token name one connection.

use super::conn::Conn;

/// The connection table: a slab whose index is the connection's epoll token.
///
/// # Invariant: a token names one connection
///
/// A freed slot is reused only by [`Server::accept_all`], at the end of a turn, when every token
/// of that turn's events and leftovers has been handled. The leftovers carried to the next turn
/// stay open until that turn's step 3 drives them: only [`Server::drive`] and
/// [`Server::close_idle`] close a connection, the first never queues one it closes, the second
/// never closes a queued one, and the events of a queued connection only update its flags.
/// Closing the descriptor also takes it out of the epoll set (the kernel drops an entry when its
/// last descriptor closes, and none is duplicated), so an old connection's event never reaches a
/// new one in the same slot.
///
/// [`Server::accept_all`]: super::Server::accept_all
/// [`Server::drive`]: super::Server::drive
/// [`Server::close_idle`]: super::Server::close_idle
#[derive(Default)]
pub(super) struct Conns {
    /// `Some` for an open connection; `None` for a free slot.
    slots: Vec<Option<Conn>>,
    /// The free slots, reused last-freed first.
    free: Vec<usize>,
}

impl Conns {
    /// The token that the next [`Conns::insert`] gives.
    pub(super) fn next_token(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    /// Stores `conn` under [`Conns::next_token`].
    pub(super) fn insert(&mut self, conn: Conn) {
        match self.free.pop() {
            Some(token) => self.slots[token] = Some(conn),
            None => self.slots.push(Some(conn)),
        }
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub(super) fn get_mut(&mut self, token: usize) -> Option<&mut Conn> {
        self.slots.get_mut(token)?.as_mut()
    }

    /// Drops the connection, which closes its socket.
    pub(super) fn remove(&mut self, token: usize) {
        if self.slots[token].take().is_some() {
            self.free.push(token);
        }
    }
}
