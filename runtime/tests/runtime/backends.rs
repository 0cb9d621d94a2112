//! Every poller backend compiled in, chosen through the builder: each runs a runtime, and a
//! socket that starts being waited on after a wake from another thread is watched by the very
//! next sleep in the poller (poll and select rebuild their sets per wait; a stale set would leave
//! the socket unwatched and the task asleep).

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use mini::net::TcpStream;
use mini::time::timeout;
use mini::{Backend, Runtime};

use crate::util;

/// A correctness bound, not a benchmark: a working wake-up takes microseconds.
const PROMPT: Duration = Duration::from_secs(2);

#[test]
fn a_socket_waited_on_after_a_cross_thread_wake_gets_its_event_promptly() {
    for backend in Backend::compiled() {
        let runtime = Runtime::builder().backend(backend).build().expect("build the runtime");
        assert_eq!(runtime.backend(), backend);
        let peer = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = peer.local_addr().unwrap();
        let tid = util::current_tid();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        // The other thread: once the runtime sleeps, wake it; once it sleeps again (now waiting
        // on the new socket), send the socket a byte.
        let other = thread::spawn(move || {
            util::wait_until_asleep(&tid, PROMPT);
            go_tx.send(()).unwrap();
            let (mut conn, _) = peer.accept().unwrap();
            util::wait_until_asleep(&tid, PROMPT);
            conn.write_all(b"!").unwrap();
            Instant::now()
        });
        let received_at = runtime.block_on(async {
            timeout(PROMPT, go_rx).await.expect("woken from another thread").unwrap();
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut byte = [0; 1];
            timeout(PROMPT, stream.read_exact(&mut byte))
                .await
                .unwrap_or_else(|_| panic!("{backend}: the new socket's event never came"))
                .unwrap();
            assert_eq!(&byte, b"!");
            Instant::now()
        });
        let sent_at = other.join().unwrap();
        let latency = received_at.saturating_duration_since(sent_at);
        assert!(latency < PROMPT, "{backend}: the event took {latency:?}");
    }
}

#[test]
fn asking_for_a_backend_that_is_not_compiled_in_is_a_clear_error() {
    for backend in Backend::ALL {
        match Runtime::builder().backend(backend).build() {
            Ok(rt) => assert!(backend.is_compiled() && rt.backend() == backend),
            Err(e) => {
                assert!(!backend.is_compiled(), "{backend} is compiled in but failed: {e}");
                let message = e.to_string();
                assert!(message.contains(&format!("`{backend}` feature")), "{message}");
            }
        }
    }
}

#[test]
fn backend_names_parse_and_print() {
    for backend in Backend::ALL {
        assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
    }
    let err = "kqueue".parse::<Backend>().unwrap_err().to_string();
    assert!(err.contains("kqueue") && err.contains("uring, epoll, poll or select"), "{err}");
    assert_eq!(Backend::best(), Backend::compiled()[0]);
}
