//! The adapter under hyper's own server and client, on one mini runtime: bodies stream both
//! ways, the header timer closes a slow client, `Timer::reset` moves a sleep in place, the
//! executor runs futures that are not `Send`.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::{Executor, Sleep, Timer};
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use mini::net::{TcpListener, TcpStream};
use mini_hyper::{MiniExecutor, MiniIo, MiniSleep, MiniTimer};

/// Bound on every test body: they take milliseconds; this turns a hang into a failure.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` on a new mini runtime, failing if it takes longer than [`LIMIT`].
fn run<F: Future>(body: F) -> F::Output {
    mini::block_on(async { mini::time::timeout(LIMIT, body).await.expect("the test hung") })
}

/// `GET` answers `hello`; `POST` answers with the request's body, streamed.
async fn echo(
    req: Request<Incoming>,
) -> Result<Response<Either<Full<Bytes>, Incoming>>, Infallible> {
    Ok(match *req.method() {
        hyper::Method::POST => Response::new(Either::Right(req.into_body())),
        _ => Response::new(Either::Left(Full::new(Bytes::from_static(b"hello")))),
    })
}

/// Starts a hyper server on the current runtime, with `header_timeout`; returns its address.
fn start_server(header_timeout: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    mini::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let conn = http1::Builder::new()
                .timer(MiniTimer)
                .header_read_timeout(header_timeout)
                .serve_connection(MiniIo::new(stream), service_fn(echo));
            mini::spawn(conn);
        }
    });
    addr
}

#[test]
fn a_hyper_client_and_server_stream_bodies_over_one_keep_alive_connection() {
    run(async {
        let addr = start_server(Duration::from_secs(30));
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(MiniIo::new(stream)).await.unwrap();
        mini::spawn(conn);
        for round in 0..3u8 {
            // A megabyte, bigger than the socket buffers: the reply streams while it uploads.
            let sent: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8 ^ round).collect();
            let request =
                Request::post("/echo").body(Full::new(Bytes::from(sent.clone()))).unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let got = response.into_body().collect().await.unwrap().to_bytes();
            assert!(
                got == sent,
                "round {round}: echoed {} bytes, not the {} sent",
                got.len(),
                sent.len()
            );
        }
        let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let body = sender.send_request(request).await.unwrap().into_body().collect().await;
        assert_eq!(body.unwrap().to_bytes(), "hello");
    });
}

#[test]
fn the_header_timeout_closes_a_client_that_sends_half_a_request() {
    run(async {
        let timeout = Duration::from_millis(200);
        let addr = start_server(timeout);
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x").await.unwrap();
        let mut buf = [0; 256];
        // hyper closes without a reply; a reset also counts as closed.
        let closed = matches!(slow.read(&mut buf).await, Ok(0) | Err(_));
        let waited = start.elapsed();
        assert!(closed, "the server answered a half-sent request");
        assert!(waited >= timeout, "closed after {waited:?}, before the {timeout:?} timeout");
        assert!(waited < timeout * 10, "closed only after {waited:?}");
    });
}

#[test]
fn timer_reset_moves_a_sleep_in_place_and_wakes_at_the_new_deadline() {
    run(async {
        let timer = MiniTimer;
        let mut sleep = timer.sleep(Duration::from_secs(30));
        assert!(futures_poll(&mut sleep).await.is_pending());
        let before: *const dyn Sleep = &*sleep;
        let start = Instant::now();
        timer.reset(&mut sleep, start + Duration::from_millis(10));
        assert!(std::ptr::addr_eq(before, &*sleep as *const dyn Sleep), "reset reallocated");
        assert_eq!(
            sleep.as_mut().downcast_mut_pin::<MiniSleep>().unwrap().deadline(),
            start + Duration::from_millis(10)
        );
        sleep.await;
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

/// Polls `future` once.
async fn futures_poll<F: Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}

#[test]
fn the_executor_runs_futures_that_are_not_send() {
    run(async {
        let ran = Rc::new(Cell::new(false));
        let (tx, rx) = (ran.clone(), ran);
        MiniExecutor.execute(async move { tx.set(true) });
        mini::yield_now().await;
        assert!(rx.get(), "the executed future did not run");
    });
}

#[test]
fn timers_are_send_and_sync_as_hyper_requires() {
    fn send_sync_static<T: Send + Sync + 'static>() {}
    send_sync_static::<MiniTimer>();
    send_sync_static::<MiniSleep>();
}
