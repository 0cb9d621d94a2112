//! The server on mini: an accept loop, and a task per connection running hyper's HTTP/1
//! connection future over [`MiniIo`], with [`MiniTimer`] for the header timeout.

use std::convert::Infallible;
use std::io;
use std::net::TcpListener as StdListener;

use hyper::service::service_fn;
use mini::net::TcpListener;
use mini_hyper::{MiniIo, MiniTimer};

use crate::service::{handle, Settings};

/// Serves `listener` until the process exits; returns only if the runtime cannot start.
pub fn serve(listener: StdListener, settings: Settings) -> io::Result<Infallible> {
    let runtime = mini::Runtime::new()?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    if crate::out_of_resources(&e) {
                        mini::time::sleep(crate::ACCEPT_PAUSE).await;
                    }
                    continue;
                }
            };
            // The reply to a request goes out in one write; no need to hold it for more.
            let _ = stream.set_nodelay(true);
            let conn = settings
                .builder(MiniTimer)
                .serve_connection(MiniIo::new(stream), service_fn(handle));
            mini::spawn(async move {
                if let Err(e) = conn.await {
                    // A client that resets, times out or sends garbage: its business.
                    log::debug!("connection: {e}");
                }
            });
        }
    })
}
