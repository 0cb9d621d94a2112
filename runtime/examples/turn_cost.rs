//! What one reactor turn costs on each poller backend, with 1 active socket among N idle ones.
//!
//! ```sh
//! cargo run --release -p mini --all-features --example turn_cost
//! ```
//!
//! For each compiled-in backend and each N, the example holds N idle TCP connections (every one
//! with a task waiting to read it, so it is in the poller's set) and bounces one byte over one
//! more connection between two tasks. Each round trip makes the runtime wait in the poller twice
//! (once for each direction), so half a round trip is the price of one turn: the wait, plus a
//! constant amount of task and socket work. The peers of the idle connections live in a child
//! process (this same program, run with `--hold`), so that 10 000 connections cost this process
//! 10 000 descriptors, not 20 000. select stops where its descriptors would reach `FD_SETSIZE`.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mini::net::{TcpListener, TcpStream};
use mini::{Backend, Runtime};

const IDLE_COUNTS: [usize; 4] = [10, 100, 1_000, 10_000];
/// Round trips are repeated for at least this long per measurement.
const MEASURE_FOR: Duration = Duration::from_millis(300);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    raise_descriptor_limit()?;
    if let [_, flag, addr, count] = &args[..] {
        if flag == "--hold" {
            return hold(addr, count.parse().expect("--hold ADDR COUNT"));
        }
    }
    println!("| backend | idle sockets | µs per round trip | µs per turn |");
    println!("| --- | ---: | ---: | ---: |");
    for backend in Backend::compiled() {
        for idle in IDLE_COUNTS {
            // select's set holds descriptors below 1024; leave room for the rest of the process.
            if backend == Backend::Select && idle > 1_000 {
                continue;
            }
            let round_trip = measure(backend, idle)?;
            let micros = round_trip.as_secs_f64() * 1e6;
            println!("| {backend} | {idle} | {micros:.1} | {:.1} |", micros / 2.0);
        }
    }
    Ok(())
}

/// One measurement: the mean round-trip time with `idle` idle connections watched by `backend`.
fn measure(backend: Backend, idle: usize) -> io::Result<Duration> {
    let runtime = Runtime::builder().backend(backend).build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let mut holder = Command::new(std::env::current_exe()?)
            .args(["--hold", &addr, &idle.to_string()])
            .stdin(Stdio::piped())
            .spawn()?;
        for _ in 0..idle {
            let (mut stream, _) = listener.accept().await?;
            // Waits for a byte that never comes: the socket stays in the poller's set.
            mini::spawn(async move { stream.read(&mut [0; 1]).await });
        }

        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        mini::spawn(async move {
            let mut byte = [0; 1];
            while server.read_exact(&mut byte).await.is_ok() {
                if server.write_all(&byte).await.is_err() {
                    break;
                }
            }
        });

        let mut byte = [7; 1];
        let mut round_trips = 0u32;
        let start = Instant::now();
        while start.elapsed() < MEASURE_FOR || round_trips < 100 {
            client.write_all(&byte).await?;
            client.read_exact(&mut byte).await?;
            round_trips += 1;
        }
        let elapsed = start.elapsed();
        drop(holder.stdin.take()); // the holder exits at end of input
        holder.wait()?;
        Ok(elapsed / round_trips)
    })
}

/// The child: opens `count` connections to `addr` and keeps them, silent, until stdin closes.
fn hold(addr: &str, count: usize) -> io::Result<()> {
    let held: Vec<_> =
        (0..count).map(|_| std::net::TcpStream::connect(addr)).collect::<Result<_, _>>()?;
    io::stdin().read_to_end(&mut Vec::new())?;
    drop(held);
    io::stdout().flush()
}

/// Lifts the soft limit on open descriptors to the hard one: 10 000 sockets need it.
fn raise_descriptor_limit() -> io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live rlimit that the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a live, initialised rlimit that the call only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
