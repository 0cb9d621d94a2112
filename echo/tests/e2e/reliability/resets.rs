//! Fault 5: a peer that resets while the server is stuck writing to it. The server's next
//! write fails with `EPIPE`, the error that comes with `SIGPIPE`: the server must log it for that
//! connection only, keep serving the others exactly, and release the descriptor.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use super::measure::{fd_baseline, fds_settled};
use super::{fail, on_every_server, SERVERS};
use crate::util::{
    echo_once, random_bytes, set_linger_zero, try_connect, wait_until, Server, IO_TIMEOUT,
};

/// What the victim sends: more than the server can pass on to it (its receive buffer is 4 KiB
/// and the server's send buffer 8 KiB), little enough that all of it, and its FIN, reach the
/// server's receive buffer.
const VICTIM_SENDS: usize = 64 << 10;
/// `--send-buffer` of the reset tests: 8 KiB per server socket.
const RESET_SEND_BUFFER: &str = "4096";

/// A client sends 64 KiB, half-closes and never reads, so the server is stuck writing with input
/// left to read and the peer's FIN received (`CLOSE_WAIT`). Then it resets. The server's next
/// write fails with `EPIPE` (the error that comes with `SIGPIPE` to a process that does not
/// ignore it and writes without `MSG_NOSIGNAL`): the server must log an error for that
/// connection, keep running, keep a concurrent conversation exact, and release the descriptor.
#[test]
fn peer_reset_while_server_writes() {
    on_every_server(&SERVERS, |runtime| reset_while_writing(runtime, false));
}

/// The same against the `epoll` server and the `sigio` server (which shares its connection
/// step), whose writes with output pending and input waiting are `writev(2)` calls (no
/// `MSG_NOSIGNAL`): the error must be `EPIPE`, so the kernel raised `SIGPIPE`, and the server
/// must survive it.
#[test]
fn peer_reset_during_writev() {
    on_every_server(&["epoll", "sigio"], |runtime| reset_while_writing(runtime, true));
}

fn reset_while_writing(runtime: &str, want_epipe: bool) -> Result<String, String> {
    let mut server = Server::start_with(runtime, &["--send-buffer", RESET_SEND_BUFFER], |c| {
        c.env("RUST_LOG", "echo=debug");
    });
    let addr = server.addr();
    let baseline = fd_baseline(&server);
    let stop = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    let victim = thread::scope(|s| {
        let talker = s.spawn(|| conversation(addr, &stop, &rounds));
        let victim = if wait_until(IO_TIMEOUT, || rounds.load(Ordering::Relaxed) > 0) {
            reset_a_victim(&server)
        } else {
            Err("the conversation never got its first echo".into())
        };
        stop.store(true, Ordering::Relaxed);
        let talked = talker.join().expect("talker panicked");
        victim.and_then(|v| talked.map(|rounds| (v, rounds)))
    });
    let ((peer, error), rounds) = victim.map_err(|e| fail(&server, &e))?;
    server.assert_running();
    if want_epipe && !error.contains("os error 32") {
        return Err(fail(&server, &format!("the error was {error:?}, not EPIPE")));
    }
    let now = fds_settled(&server, baseline);
    if now > baseline {
        return Err(fail(&server, &format!("{now} descriptors open, baseline {baseline}")));
    }
    Ok(format!("{peer}: {error:?}; {rounds} exact rounds meanwhile; descriptors back to {now}"))
}

/// Connects the victim, gets the server stuck writing to it, resets it and returns its address
/// and the error the server logged for it.
fn reset_a_victim(server: &Server) -> Result<(SocketAddr, String), String> {
    let victim = connect_with_small_receive_buffer(server.addr())?;
    let peer = victim.local_addr().unwrap();
    (&victim).write_all(&[b'v'; VICTIM_SENDS]).map_err(|e| format!("victim write: {e}"))?;
    victim.shutdown(Shutdown::Write).map_err(|e| format!("victim shutdown: {e}"))?;
    // Everything, FIN included, has reached the server once nothing is left unacknowledged.
    if !wait_until(IO_TIMEOUT, || queued(&victim, libc::TIOCOUTQ) == 0) {
        return Err(format!("{} bytes never left the victim", queued(&victim, libc::TIOCOUTQ)));
    }
    let echoed = queued(&victim, libc::FIONREAD);
    if echoed >= VICTIM_SENDS {
        return Err(format!("the server echoed all {echoed} bytes: it never had to wait"));
    }
    set_linger_zero(&victim);
    drop(victim);
    let needle = format!("closing {peer} after an error: ");
    let mut error = None;
    wait_until(IO_TIMEOUT, || {
        let log = server.log();
        error = log.lines().find_map(|l| l.split_once(&needle)).map(|(_, e)| e.to_owned());
        error.is_some()
    });
    let error = error.ok_or_else(|| format!("no error logged for {peer} (\"{needle}...\")"))?;
    Ok((peer, error))
}

/// Echo rounds of 4 KiB on one connection until `stop`, then ten more; returns how many.
fn conversation(
    addr: SocketAddr,
    stop: &AtomicBool,
    rounds: &AtomicUsize,
) -> Result<usize, String> {
    let client = try_connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut after_stop = 0;
    for round in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            if after_stop == 10 {
                return Ok(round);
            }
            after_stop += 1;
        }
        let sent = random_bytes(4096, round as u64);
        match echo_once(&client, &sent) {
            Ok(got) if got == sent => rounds.fetch_add(1, Ordering::Relaxed),
            other => {
                return Err(format!("conversation round {round}: {:?}", other.map(|g| g.len())))
            }
        };
    }
    unreachable!("the rounds are unbounded")
}

/// A client socket whose receive buffer is set small before it connects (so its window is
/// small from the handshake on), with the usual timeouts.
fn connect_with_small_receive_buffer(addr: SocketAddr) -> Result<TcpStream, String> {
    let SocketAddr::V4(v4) = addr else { return Err("the server is not on IPv4".into()) };
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: socket(2) just returned this descriptor and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 4096;
    // SAFETY: the value points to a live c_int and the length is its size; the socket is open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(format!("SO_RCVBUF: {}", io::Error::last_os_error()));
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: the address points to a live sockaddr_in and the length is its size; the socket
    // is open. The call blocks until the handshake is done (loopback: at once).
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(format!("connect: {}", io::Error::last_os_error()));
    }
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    Ok(stream)
}

/// Bytes in a socket's queue: `TIOCOUTQ`, sent but not acknowledged (FIN included); `FIONREAD`,
/// received but not read.
fn queued(stream: &TcpStream, request: libc::Ioctl) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: both requests write one c_int through the pointer, which points to a live one; the
    // socket is open.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), request, &mut n) };
    assert_eq!(rc, 0, "ioctl: {}", io::Error::last_os_error());
    n as usize
}
