//! The HTTP service and the connection settings, the same whichever runtime runs them.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};

/// A response body: a fixed text, or the request's own body streaming back.
pub type Body = Either<Full<Bytes>, Incoming>;

/// What the command line configures about each connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// hyper's `header_read_timeout`: how long a request's line and headers may take to arrive.
    pub header_timeout: Duration,
}

impl Settings {
    /// A hyper HTTP/1 connection builder with these settings and `timer` (which the header
    /// timeout needs).
    pub fn builder<M>(&self, timer: M) -> http1::Builder
    where
        M: hyper::rt::Timer + Send + Sync + 'static,
    {
        let mut builder = http1::Builder::new();
        builder.timer(timer).header_read_timeout(self.header_timeout);
        builder
    }
}

/// `GET /`: `Hello, World!`. `POST /echo`: the request body, streamed back frame by frame as it
/// arrives (hyper reads the next piece only when the last is written, so TCP flow control, not
/// our memory, holds back a client that sends faster than it reads). Anything else: 404.
pub async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, World!"),
        (&Method::POST, "/echo") => Response::new(Either::Right(request.into_body())),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response
}
