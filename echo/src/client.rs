//! `echo client`: a blocking line client, to try a server by hand.
//!
//! It reads stdin a line at a time, sends each line (with its `\n`; a last line without one gets
//! one), reads back exactly as many bytes, since every server replies byte for byte, and prints
//! them. Working in lock step keeps the client simple and makes each reply appear right after
//! its line. At the end of stdin it shuts down its sending side, which tells the server it is done.

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use anyhow::{Context, Result};

/// Runs the client against the server at `addr` until stdin ends.
pub fn run(addr: SocketAddr) -> Result<()> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut line = Vec::new();
    let mut reply = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).context("cannot read stdin")? == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        stream.write_all(&line).with_context(|| format!("cannot send to {addr}"))?;
        reply.resize(line.len(), 0);
        stream.read_exact(&mut reply).with_context(|| format!("no full reply from {addr}"))?;
        stdout.write_all(&reply).context("cannot write stdout")?;
        stdout.flush().context("cannot write stdout")?;
    }
    stream.shutdown(Shutdown::Write).with_context(|| format!("cannot shut down {addr}"))?;
    Ok(())
}
