//! A slab with generations: a `Vec` of slots, reused after removal, addressed by keys that go
//! stale when their slot is reused.
//!
//! Both the task table and the socket registry hand out keys that outlive the thing they name:
//! a waker can be woken after its task finished, an event can arrive for a socket that was
//! closed. A plain index would then name whatever took the slot next. So each slot counts how
//! often it has been filled, a [`Key`] carries that count, and a lookup with an old count finds
//! nothing.
//!
//! The count has 16 bits and wraps: a key would have to outlive 65 536 reuses of its slot to
//! name a new occupant, and even then the harm is bounded: an event or a wake-up meant for the
//! old one reaches the new one, which treats it as spurious (a socket retries its syscall and
//! gets `EWOULDBLOCK`; a task is polled once for nothing).

/// Names one occupant of one slot. Packs into the low [`Key::BITS`] bits of a `u64` for the
/// poller's token; the bits above are free, and a task's waker uses them to name its runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    index: u32,
    generation: u16,
}

impl Key {
    /// How many low bits of a `u64` [`Key::to_u64`] uses: the index's, then the generation's.
    pub(crate) const BITS: u32 = u32::BITS + u16::BITS;

    /// A key no slot hands out (index u32::MAX is never used): for a name that must never
    /// match an entry.
    pub(crate) const MAX: Key = Key { index: u32::MAX, generation: u16::MAX };

    /// The slot's position in the slab.
    pub(crate) fn index(self) -> u32 {
        self.index
    }

    /// How many times the slot had been filled before this occupant (wrapping).
    pub(crate) fn generation(self) -> u16 {
        self.generation
    }

    /// The index in the low 32 bits, the generation above it; bits from [`Key::BITS`] up are 0.
    pub(crate) fn to_u64(self) -> u64 {
        (u64::from(self.generation) << u32::BITS) | u64::from(self.index)
    }

    /// The key packed by [`Key::to_u64`]; bits from [`Key::BITS`] up are ignored.
    pub(crate) fn from_u64(raw: u64) -> Key {
        Key { index: raw as u32, generation: (raw >> u32::BITS) as u16 }
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u16,
    value: Option<T>,
}

/// Slots that are reused after removal; see the module docs.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Indexes of empty slots, reused last-in first-out (the most recently freed is warm in cache).
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts the value that `make` builds from the key it will be stored under (a task's
    /// waker must know its own key).
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(Key) -> T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            // Wrapping after 2^16 reuses of one slot is accepted: a key that old is long gone,
            // and if one did come back it would cost a spurious wake-up, which every future
            // and socket tolerates (see the module docs).
            slot.generation = slot.generation.wrapping_add(1);
            let key = Key { index, generation: slot.generation };
            slot.value = Some(make(key));
            return key;
        }
        // Index u32::MAX stays unused: `Key::MAX` must name nothing.
        let index = u32::try_from(self.slots.len())
            .ok()
            .filter(|&index| index < u32::MAX)
            .expect("mini: more than 2^32 - 1 live entries");
        let key = Key { index, generation: 0 };
        self.slots.push(Slot { generation: 0, value: Some(make(key)) });
        key
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Removes and returns every value, leaving the slab empty (generations are kept).
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(value) = slot.value.take() {
                self.free.push(index as u32);
                out.push(value);
            }
        }
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_to_an_old_key() {
        let mut slab = Slab::new();
        let old = slab.insert_with(|_| "first");
        assert_eq!(slab.remove(old), Some("first"));
        let new = slab.insert_with(|_| "second");
        assert_eq!(Key::from_u64(new.to_u64()), new);
        assert_ne!(old, new, "the slot is reused under a new generation");
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.remove(old), None);
        assert_eq!(slab.get(new), Some(&"second"));
        assert_eq!(slab.len(), 1);
    }

    /// Differential test: thousands of random inserts and removes, against a map as the model.
    /// Every key ever handed out is looked up after every step: live keys find their value,
    /// removed ones (whose slot may hold something new) find nothing.
    #[test]
    fn behaves_like_a_map_that_never_reuses_keys() {
        use std::collections::HashMap;
        for seed in 0..crate::test_rng::seeds() {
            let mut rng = crate::test_rng::Rng::new(seed);
            let mut slab = Slab::new();
            let mut model: HashMap<Key, u64> = HashMap::new();
            let mut issued: Vec<Key> = Vec::new();
            for step in 0..crate::test_rng::steps(400) {
                if model.is_empty() || rng.below(3) > 0 {
                    let key = slab.insert_with(|_| step);
                    assert!(!issued.contains(&key), "seed {seed}: key {key:?} handed out twice");
                    model.insert(key, step);
                    issued.push(key);
                } else {
                    let key = issued[rng.below(issued.len() as u64) as usize];
                    assert_eq!(slab.remove(key), model.remove(&key), "seed {seed}: remove");
                }
                assert_eq!(slab.len(), model.len());
                for key in &issued {
                    assert_eq!(slab.get(*key), model.get(key), "seed {seed}: get {key:?}");
                }
            }
        }
    }
}
