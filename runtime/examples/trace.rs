//! Watch the runtime work: one echo round trip, in one process, with `mini`'s trace log on.
//!
//! ```sh
//! cargo run -p mini --example trace
//! ```
//!
//! The runtime narrates at `trace` level through the `log` crate: every registration, every wait
//! in the poller, every event, every wake and every poll. This example turns that on (with
//! `env_logger`, on stdout, without timestamps) and prints a numbered line before each step of a
//! round trip, so that you can see which log lines each step causes. `docs/tour.md` walks through
//! the same lines for the real `echo` server, one by one.
//!
//! Things to look for:
//!
//! - "would block; the task waits": a future returned `Pending` after leaving its waker.
//! - "waiting for events (timeout None)": nothing can run, so the thread sleeps in the poller.
//! - "fd N is ready" then "woken" then "polling": an event wakes exactly the task that waits.

use std::io;

use mini::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    env_logger::Builder::new()
        .filter_module("mini", log::LevelFilter::Trace)
        .format_timestamp(None)
        .target(env_logger::Target::Stdout)
        .init();

    mini::block_on(async {
        step("1. bind: the listener's socket is registered with the poller");
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;

        step("2. spawn the server task: queued now, first polled when the main future waits");
        let server = mini::spawn(async move {
            let (mut stream, _) = listener.accept().await?;
            let mut buf = [0; 64];
            let n = stream.read(&mut buf).await?;
            stream.write_all(&buf[..n]).await?;
            Ok::<(), io::Error>(())
        });

        step("3. connect: the main future waits until the handshake is done (writable)");
        let mut client = TcpStream::connect(addr).await?;

        step("4. send \"ping\": the socket has room, so this completes without waiting");
        client.write_all(b"ping").await?;

        step("5. read the reply: none yet, so the main future waits and the server task runs");
        let mut reply = [0; 4];
        client.read_exact(&mut reply).await?;

        step(&format!("6. the main future got {:?} back", String::from_utf8_lossy(&reply)));
        server.await.expect("the server task panicked")?;
        step("7. the server task is done; block_on returns");
        Ok(())
    })
}

/// One line of narrative, set apart from the log lines around it.
fn step(what: &str) {
    println!("\n== {what}");
}
