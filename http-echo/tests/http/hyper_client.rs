//! hyper's own HTTP/1 client, run on mini through `mini-hyper`: the client side of the
//! adapter, against the server on each runtime.

use std::future::Future;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper::{Method, Request, StatusCode};
use mini::net::TcpStream;
use mini_hyper::MiniIo;

use crate::util::{assert_same_bytes, random_bytes, Server, IO_TIMEOUT, RUNTIMES};

/// Runs `future` on a new mini runtime, failing if it takes longer than a few [`IO_TIMEOUT`]s.
pub fn block_on<F: Future>(future: F) -> F::Output {
    mini::block_on(async {
        mini::time::timeout(3 * IO_TIMEOUT, future).await.expect("the client hung")
    })
}

/// One keep-alive HTTP/1 connection: its connection future runs as a task of its own, and
/// requests go through the sender, one at a time.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = handshake(MiniIo::new(stream)).await.expect("handshake");
        mini::spawn(async move {
            let _ = conn.await;
        });
        Client { sender }
    }

    /// Sends a request and reads the whole reply.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let response = self.sender.send_request(request).await.expect("send the request");
        let status = response.status();
        let body = response.into_body().collect().await.expect("read the body").to_bytes();
        (status, body.to_vec())
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, Vec<u8>) {
        self.send(Method::GET, path, Vec::new()).await
    }
}

#[test]
fn hyper_s_client_on_mini_gets_hello_and_streams_bodies_back_on_one_connection() {
    for runtime in RUNTIMES {
        let server = Server::start(runtime, &[]);
        block_on(async {
            let mut client = Client::connect(server.addr()).await;
            assert_eq!(client.get("/").await, (StatusCode::OK, b"Hello, World!".to_vec()));
            for (round, len) in [0, 1, 100_000, 4 << 20].into_iter().enumerate() {
                let sent = random_bytes(len, round as u64);
                let (status, got) = client.send(Method::POST, "/echo", sent.clone()).await;
                assert_eq!(status, StatusCode::OK, "{runtime}");
                assert_same_bytes(&format!("{runtime}: body of {len} bytes"), &got, &sent);
            }
            assert_eq!(client.get("/nowhere").await.0, StatusCode::NOT_FOUND, "{runtime}");
            assert_eq!(client.get("/").await.1, b"Hello, World!", "{runtime}: after a 404");
        });
    }
}
