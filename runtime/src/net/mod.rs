//! TCP sockets that wait by returning `Pending` instead of blocking the thread.
//!
//! Each socket is a non-blocking OS socket registered with the reactor (a `Source`). Its async
//! methods try the syscall at once and wait only when the kernel answers `EWOULDBLOCK`, or when
//! a short read or write already showed there is nothing more to do now (a connect always waits
//! for the handshake); see `reactor/source.rs` for the steps.
//!
//! A [`TcpStream`] can be split with [`TcpStream::into_split`] so that one task reads while
//! another writes. The stream and its halves also implement the `futures-io` traits
//! `AsyncRead` and `AsyncWrite`, so the combinators of the `futures` crate work on them.

mod io;
mod listener;
pub(crate) mod socket;
mod split;
mod stream;

pub use listener::TcpListener;
pub use split::{OwnedReadHalf, OwnedWriteHalf};
pub use stream::TcpStream;
