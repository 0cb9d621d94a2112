//! The peer: the same service on tokio's current-thread runtime (one thread, like mini), with
//! `hyper-util`'s `TokioIo` and `TokioTimer`, the usual way to run hyper on tokio.

use std::convert::Infallible;
use std::io;
use std::net::TcpListener as StdListener;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::service::{handle, Settings};

/// Serves `listener` until the process exits; returns only if the runtime cannot start.
pub fn serve(listener: StdListener, settings: Settings) -> io::Result<Infallible> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    if crate::out_of_resources(&e) {
                        tokio::time::sleep(crate::ACCEPT_PAUSE).await;
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = settings
                .builder(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service_fn(handle));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    log::debug!("connection: {e}");
                }
            });
        }
    })
}
