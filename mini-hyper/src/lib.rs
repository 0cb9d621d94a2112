//! # mini-hyper: hyper on the mini runtime
//!
//! [hyper](https://hyper.rs) does not pick a runtime: it reads, writes, sleeps and spawns
//! through the traits of [`hyper::rt`], and each runtime supplies them (tokio's live in
//! `hyper-util`). This crate supplies them for `mini`:
//!
//! | hyper needs | here | on mini |
//! | --- | --- | --- |
//! | [`rt::Read`](hyper::rt::Read) | [`MiniIo`] | [`TcpStream::poll_read_uninit`](mini::net::TcpStream::poll_read_uninit): `recv` straight into hyper's buffer, no zeroing |
//! | [`rt::Write`](hyper::rt::Write) | [`MiniIo`] | the stream's `futures-io` `AsyncWrite`: `send`, `writev` for vectored writes, `shutdown(Write)` |
//! | [`rt::Timer`](hyper::rt::Timer), [`rt::Sleep`](hyper::rt::Sleep) | [`MiniTimer`], [`MiniSleep`] | [`mini::time::Sleep`], a deadline in the reactor's timer queue; `reset` moves it |
//! | [`rt::Executor`](hyper::rt::Executor) | [`MiniExecutor`] | [`mini::spawn`] |
//!
//! ```
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::Bytes;
//! use hyper::{service::service_fn, Request, Response};
//! use mini::net::{TcpListener, TcpStream};
//! use mini_hyper::{MiniIo, MiniTimer};
//!
//! mini::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     // A server: one task per connection, each a hyper HTTP/1 connection.
//!     mini::spawn(async move {
//!         while let Ok((stream, _)) = listener.accept().await {
//!             let hello = service_fn(|_req| async {
//!                 Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hi"))))
//!             });
//!             let conn = hyper::server::conn::http1::Builder::new()
//!                 .timer(MiniTimer)
//!                 .serve_connection(MiniIo::new(stream), hello);
//!             mini::spawn(conn);
//!         }
//!     });
//!     // A client: the connection runs as a task, requests go through `sender`.
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(MiniIo::new(stream))
//!         .await
//!         .expect("handshake");
//!     mini::spawn(conn);
//!     let request = Request::get("/").body(Empty::<Bytes>::new()).expect("request");
//!     let response = sender.send_request(request).await.expect("response");
//!     let body = response.into_body().collect().await.expect("body").to_bytes();
//!     assert_eq!(body, "hi");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Why a crate, not a feature of mini
//!
//! The adapter uses only mini's public API, so it lives beside mini rather than inside it:
//! `mini` stays a runtime with no HTTP in its source or its dependency tree (in any build, not
//! just the default one), hyper's releases never touch it, and the crate shows that the public
//! API is enough for a third-party adapter (as `smol-hyper` is for smol). Two things mini gained
//! for it are useful on their own: `TcpStream::poll_read_uninit`, and a `Sleep` that is
//! `Send + Sync`.
//!
//! # `Send` and `Sync`
//!
//! hyper requires `rt::Sleep: Send + Sync` and a `Timer` that is `Send + Sync`. mini's tasks
//! are not `Send`, but its [`Sleep`](mini::time::Sleep) is: like mini's wakers it holds numbers
//! (its runtime's, its timer's key) rather than a pointer to the runtime, and finds the reactor
//! through the thread-local context when polled. So [`MiniSleep`] is `Send + Sync` by the
//! compiler's own reasoning, with no `unsafe impl`. It must be polled on the runtime's thread
//! (hyper polls it inside the connection's task, which is), and panics with a clear message
//! anywhere else.
//!
//! [`MiniExecutor`] runs futures that are not `Send` (hyper's HTTP/2 accepts such an executor);
//! HTTP/1 needs no executor at all: its connection is one future, spawned by the caller.
//!
//! hyper itself depends on tokio for its `sync` channels (no runtime, reactor or timer of
//! tokio's is built); mini does not depend on tokio, nor does this crate beyond that.

#![deny(missing_docs)]

mod executor;
mod io;
mod timer;

pub use executor::MiniExecutor;
pub use io::MiniIo;
pub use timer::{MiniSleep, MiniTimer};
