//! A tiny deterministic random number generator for the differential tests (xorshift64*):
//! reproducible from its seed, and no dependency.

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How many seeds a differential test tries: fewer under Miri, which runs ~1000 times slower.
pub(crate) fn seeds() -> u64 {
    if cfg!(miri) {
        2
    } else {
        50
    }
}

/// How many steps per seed: `normal`, or a tenth under Miri.
pub(crate) fn steps(normal: u64) -> u64 {
    if cfg!(miri) {
        normal / 10
    } else {
        normal
    }
}
