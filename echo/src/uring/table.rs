//! The connection table of the io_uring server: a slab whose index, with the connection's
//! serial, is the [`Key`] in the `user_data` of every operation of that connection.

use super::conn::Conn;
use super::ring::Key;

/// The open connections, by slot.
///
/// # Invariant: a completion names one connection
///
/// A connection leaves its slot only when it has no operation in flight ([`Conn::settle`] says
/// `Done` only then), so every completion that names a slot comes from the connection in it: the
/// kernel posts nothing more for an operation after its last completion. The serial in the key
/// is a second line: [`Conns::get_mut`] refuses a key whose serial is not the occupant's.
///
/// [`Conn::settle`]: super::conn::Conn::settle
#[derive(Default)]
pub(super) struct Conns {
    /// `Some` for an open connection; `None` for a free slot.
    slots: Vec<Option<Conn>>,
    /// The free slots, reused last-freed first.
    free: Vec<u32>,
}

impl Conns {
    /// Stores `conn` in a free slot; returns its key.
    pub(super) fn insert(&mut self, conn: Conn) -> Key {
        let serial = conn.serial;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                // More than 4 billion connections would need more descriptors than Linux allows.
                (self.slots.len() - 1) as u32
            }
        };
        Key::new(slot, serial)
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// The connection `key` names, if it is still open.
    pub(super) fn get_mut(&mut self, key: Key) -> Option<&mut Conn> {
        let conn = self.slots.get_mut(key.slot as usize)?.as_mut()?;
        (Key::new(key.slot, conn.serial) == key).then_some(conn)
    }

    /// Takes the connection out of its slot (the caller drops it, which closes its socket).
    pub(super) fn remove(&mut self, key: Key) -> Option<Conn> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if Key::new(key.slot, slot.as_ref()?.serial) != key {
            return None;
        }
        self.free.push(key.slot);
        slot.take()
    }
}
