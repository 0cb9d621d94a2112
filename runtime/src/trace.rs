//! `trace!`: the runtime's narration, kept out of the way of its hot paths.
//!
//! The runtime reports each step (a wait, an event, a wake-up, a poll) at trace level, for
//! whoever wants to watch it work. `log::trace!` builds its message's arguments inline, behind
//! the level check; on the paths a server takes for every message, that code, though never run
//! with tracing off, makes the function bigger and costs it registers to save and restore on
//! every call. This macro makes the same check inline and moves the formatting into a closure
//! run out of line, marked cold.

/// `log::trace!`, with the formatting out of line (see the module docs).
macro_rules! trace {
    ($($arg:tt)+) => {
        if log::Level::Trace <= log::STATIC_MAX_LEVEL && log::Level::Trace <= log::max_level() {
            $crate::trace::cold(|| log::trace!($($arg)+));
        }
    };
}

/// Runs `f`, out of line: the rare path of `trace!`.
#[cold]
#[inline(never)]
pub(crate) fn cold(f: impl FnOnce()) {
    f()
}
