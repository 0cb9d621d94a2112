//! A read with a deadline: [`timeout`] around [`TcpStream::read`].
//!
//! ```sh
//! cargo run -p mini --example timeout
//! ```
//!
//! A server must not wait for ever on a client that went silent. `timeout(d, future)` makes one
//! future out of two waits: the read (its waker sits in the socket's entry in the reactor) and a
//! timer (its waker sits in the reactor's timer queue). Whichever comes first wakes the task; the
//! `Timeout` future polls the read first, so a reply that arrives at the deadline still counts.
//!
//! What this shows:
//!
//! 1. A read from a silent client gives up at the deadline, never before it.
//! 2. Giving up loses no data. A read takes bytes out of the kernel only in the poll that
//!    returns them (`Source::poll_io` in `runtime/src/reactor/source.rs`), so a read that was
//!    dropped while `Pending` had taken nothing. The next read gets whatever arrives later.
//! 3. `Elapsed` converts into an `io::Error` of kind `TimedOut`, so `?` works in I/O code.

use std::io;
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};
use mini::time::timeout;

/// Reads some bytes, or fails with `TimedOut` if none arrive within `limit`.
async fn read_within(stream: &mut TcpStream, buf: &mut [u8], limit: Duration) -> io::Result<usize> {
    timeout(limit, stream.read(buf)).await?
}

fn main() -> io::Result<()> {
    mini::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        let mut buf = [0; 64];

        // 1. The client says nothing.
        let start = Instant::now();
        match timeout(Duration::from_millis(100), server.read(&mut buf)).await {
            Ok(result) => panic!("a silent client cannot be read from: {result:?}"),
            Err(elapsed) => {
                assert!(start.elapsed() >= Duration::from_millis(100), "gave up early");
                println!("1. no data within 100 ms: {elapsed} (waited {:?})", start.elapsed());
            }
        }

        // 2. Now it speaks. The read above was dropped; this one gets the bytes.
        client.write_all(b"ping").await?;
        let n = read_within(&mut server, &mut buf, Duration::from_secs(5)).await?;
        println!("2. the next read got {:?}: nothing was lost", String::from_utf8_lossy(&buf[..n]));

        // 3. The helper's error, when the deadline passes.
        let err = read_within(&mut server, &mut buf, Duration::from_millis(20)).await.unwrap_err();
        println!("3. as an io::Error: kind {:?}, \"{err}\"", err.kind());
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        Ok(())
    })
}
