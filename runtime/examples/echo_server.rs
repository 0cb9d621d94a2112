//! A TCP echo server on `mini` in about 30 lines, and one client to talk to it.
//!
//! ```sh
//! cargo run -p mini --example echo_server
//! ```
//!
//! The server is one task that accepts, and one more task per connection. Each connection task
//! is written like blocking code: read, write back, repeat. But `read().await` never blocks the
//! thread: when no bytes have arrived, the task returns `Pending` and the thread runs the other
//! tasks, or sleeps in the poller. `echo --runtime mini` (`echo/src/mini.rs`) is this server with
//! options and logging, and one change: its task waits with `readable()` holding no buffer, and
//! borrows the thread's shared buffer only once data is there, where this one keeps 4 KiB each.
//!
//! The client runs in the main future on the same thread. When it is done, `block_on` returns
//! and the program exits: tasks still running (the accept loop) are dropped with the runtime.
//! That is how this example serves one client and stops, so that CI can run it.

use std::io;
use std::net::Shutdown;

use mini::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    mini::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        println!("server: listening on {addr}");

        // The server: an accept loop that spawns one task per connection.
        mini::spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                println!("server: accepted {peer}");
                mini::spawn(async move {
                    let mut buf = vec![0; 4096];
                    // Until the client closes its side (a read of 0) or an error.
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    println!("server: {peer} closed its side; closing ours");
                });
            }
        });

        // The client: send a line, say "no more from me", read until the server closes.
        let mut client = TcpStream::connect(addr).await?;
        client.write_all(b"hello, mini\n").await?;
        client.shutdown(Shutdown::Write)?;
        let mut reply = Vec::new();
        let mut buf = [0; 64];
        loop {
            match client.read(&mut buf).await? {
                0 => break,
                n => reply.extend_from_slice(&buf[..n]),
            }
        }
        print!("client: got back {}", String::from_utf8_lossy(&reply));
        Ok(())
    })
}
