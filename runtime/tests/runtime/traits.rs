//! Compile-time checks: the auto traits and trait impls the API promises. These tests do their
//! work in the type checker; a regression fails the build of the test binary.

use std::error::Error;
use std::fmt::{Debug, Display};
use std::task::Waker;

use futures::io::{AsyncRead, AsyncWrite};
use mini::net::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn error<T: Error + Display + Debug>() {}
fn async_read<T: AsyncRead + Unpin>() {}
fn async_write<T: AsyncWrite + Unpin>() {}
fn debug<T: Debug>() {}

#[test]
fn wakers_and_errors_may_cross_threads() {
    // A mini task may be woken from any thread (see `wake.rs` for it at run time).
    send_sync::<Waker>();
    // A panic payload or a timeout can be handed to another thread, e.g. to report it.
    send::<mini::JoinError>();
    send_sync::<mini::time::Elapsed>();
}

#[test]
fn timers_may_cross_threads() {
    // They hold numbers, not the runtime: hyper's `rt::Sleep` demands `Send + Sync`.
    send_sync::<mini::time::Sleep>();
    send_sync::<mini::time::Interval>();
    send_sync::<mini::time::Timeout<std::future::Ready<()>>>();
}

#[test]
fn errors_implement_std_error() {
    error::<mini::JoinError>();
    error::<mini::time::Elapsed>();
}

#[test]
fn streams_implement_the_futures_io_traits() {
    async_read::<TcpStream>();
    async_write::<TcpStream>();
    async_read::<OwnedReadHalf>();
    async_write::<OwnedWriteHalf>();
}

#[test]
fn public_types_implement_debug() {
    debug::<mini::Runtime>();
    debug::<mini::JoinHandle<()>>();
    debug::<mini::JoinError>();
    debug::<mini::YieldNow>();
    debug::<mini::time::Sleep>();
    debug::<mini::time::Interval>();
    debug::<mini::time::Timeout<std::future::Pending<()>>>();
    debug::<TcpListener>();
    debug::<TcpStream>();
    debug::<OwnedReadHalf>();
    debug::<OwnedWriteHalf>();
}
