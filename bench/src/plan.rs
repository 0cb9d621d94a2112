//! What `echo bench`'s arguments resolve to: the servers, the points of the matrix, the
//! durations, and how long the whole run should take.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::load;
use super::report::Point;
use super::BenchArgs;

/// The default matrix (and the --quick one): C, S, seconds, rounds, idle N.
const DEFAULTS: (&[usize], &[usize], f64, usize, &[usize]) =
    (&[1, 10, 100, 1000], &[64, 16 * 1024], 2.0, 3, &[1000, 10_000]);
const QUICK: (&[usize], &[usize], f64, usize, &[usize]) =
    (&[1, 100], &[64, 16 * 1024], 0.5, 1, &[1000]);

/// Where results go without `--out`: `bench/` in cargo's target directory, never a committed
/// directory. That is `$CARGO_TARGET_DIR` if set, else the directory this binary was built in
/// (`TARGET/release/echo`: cargo marks TARGET with a `CACHEDIR.TAG`), else `./target`.
fn default_out() -> PathBuf {
    let built_in = || {
        let exe = std::env::current_exe().ok()?;
        let target = exe.parent()?.parent()?;
        target.join("CACHEDIR.TAG").is_file().then(|| target.to_path_buf())
    };
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(built_in);
    target.unwrap_or_else(|| PathBuf::from("target")).join("bench")
}

/// What the arguments resolve to.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) servers: Vec<String>,
    /// The load points, then the idle points: the order of one server's turn in a round.
    pub(super) points: Vec<Point>,
    pub(super) duration: Duration,
    pub(super) warmup: Duration,
    pub(super) rounds: usize,
    pub(super) pipeline: usize,
    /// The cap on each server's CPU, in percent of one core; None: no cap.
    pub(super) server_cpu: Option<u8>,
    /// `--slice`: load points run every server at once, in turns of this length.
    pub(super) slice: Option<Duration>,
    pub(super) out: PathBuf,
}

impl Plan {
    /// Resolves `args` against `available`, the `--runtime` names of the `echo` binary.
    pub(super) fn new(args: BenchArgs, available: &[String]) -> Result<Plan> {
        let servers = match args.servers {
            None => available.to_vec(),
            Some(names) => {
                let mut servers: Vec<String> = Vec::new();
                for name in names.into_iter().map(|n| n.trim().to_owned()) {
                    if !available.contains(&name) && !is_mini_on_a_backend(&name) {
                        let backends: Vec<_> = ::mini::Backend::compiled()
                            .iter()
                            .map(|b| format!("mini:{b}"))
                            .collect();
                        bail!(
                            "unknown server `{name}` in --servers; this build has: {}, {}",
                            available.join(", "),
                            backends.join(", ")
                        );
                    }
                    if !servers.contains(&name) {
                        servers.push(name);
                    }
                }
                servers
            }
        };
        let (c, s, secs, rounds, idle) = if args.quick { QUICK } else { DEFAULTS };
        let connections = args.connections.unwrap_or_else(|| c.to_vec());
        let sizes = args.sizes.unwrap_or_else(|| s.to_vec());
        let idle: Vec<usize> =
            args.idle.unwrap_or_else(|| idle.to_vec()).into_iter().filter(|&n| n > 0).collect();
        let duration = args.duration.unwrap_or(Duration::from_secs_f64(secs));
        let rounds = args.rounds.unwrap_or(rounds);
        if servers.is_empty() {
            bail!("--servers names no server");
        }
        if connections.contains(&0) || sizes.contains(&0) || rounds == 0 || args.pipeline == 0 {
            bail!("--connections, --sizes, --rounds and --pipeline must be at least 1");
        }
        let loads = connections
            .iter()
            .flat_map(|&c| sizes.iter().map(move |&s| Point::Load { connections: c, size: s }));
        let idles = idle.iter().map(|&n| Point::Idle { connections: n });
        // A point given twice is measured once, as a server named twice is: an entry of the
        // report is one server at one point.
        let mut points: Vec<Point> = Vec::new();
        for point in loads.chain(idles) {
            if !points.contains(&point) {
                points.push(point);
            }
        }
        let warmup = (duration / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        let slice = args.slice.map(Duration::from_millis);
        if slice.is_some() && servers.iter().any(|s| s == "spin") {
            bail!(
                "--slice cannot include `spin`: it burns the core it shares with the other \
                 servers while it waits for its turn"
            );
        }
        if slice.is_some() && servers.len() < 2 {
            bail!("--slice needs two servers or more: the load takes turns between them");
        }
        Ok(Plan {
            servers,
            points,
            duration,
            warmup,
            rounds,
            pipeline: args.pipeline,
            server_cpu: args.server_cpu,
            slice,
            out: args.out.unwrap_or_else(default_out),
        })
    }

    /// What the load generator runs for a load point of `connections` and `size`-byte messages.
    pub(super) fn load_spec(&self, connections: usize, size: usize) -> load::Spec {
        load::Spec {
            connections,
            size,
            pipeline: self.pipeline,
            warmup: self.warmup,
            duration: self.duration,
        }
    }

    /// How many connections the load generator holds at once for `point`: with `--slice`, a
    /// load point's connections to every server.
    pub(super) fn connections_at_once(&self, point: &Point) -> usize {
        match *point {
            Point::Load { connections, .. } if self.slice.is_some() => {
                connections * self.servers.len()
            }
            _ => connections(point),
        }
    }

    /// The expected wall time of the whole run. Besides the measured time, a point costs a
    /// server start and stop and its connections' set-up and teardown: constants measured on the
    /// 2-core machine (at C=1000, `threaded` starts and ends 1000 threads and `spin` is slow to
    /// accept them all; an idle point opens its connections in batches). `spin` accepts one connection per walk over all of them, so its
    /// idle points take time in N²: 23 s to open 10 000.
    pub(super) fn estimate(&self) -> Duration {
        let (duration, warmup) = (self.duration.as_secs_f64(), self.warmup.as_secs_f64());
        let secs: f64 = self
            .servers
            .iter()
            .flat_map(|server| self.points.iter().map(move |p| (server, p)))
            .map(|(server, point)| match *point {
                Point::Load { connections: c, .. } => warmup + duration + 0.1 + c as f64 * 1e-3,
                Point::Idle { connections: n } => {
                    let spin = if server == "spin" { (n * n) as f64 * 0.23e-6 } else { 0.0 };
                    duration + 0.3 + n as f64 * 0.1e-3 + spin
                }
            })
            .sum();
        Duration::from_secs_f64(secs * self.rounds as f64)
    }
}

/// Whether `name` is `mini:BACKEND` for a backend this build has (see [`split_backend`]).
fn is_mini_on_a_backend(name: &str) -> bool {
    match split_backend(name) {
        ("mini", Some(backend)) => {
            backend.parse::<::mini::Backend>().is_ok_and(|b| b.is_compiled())
        }
        _ => false,
    }
}

/// A server name as the `--runtime` and the `--backend` it runs: `mini:uring` is
/// `("mini", Some("uring"))`, `epoll` is `("epoll", None)`.
pub(super) fn split_backend(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((runtime, backend)) => (runtime, Some(backend)),
        None => (name, None),
    }
}

pub(super) fn connections(point: &Point) -> usize {
    match *point {
        Point::Load { connections, .. } | Point::Idle { connections } => connections,
    }
}

/// "64" -> 64, "16k" (or 16K, 16KiB) -> 16384.
pub(super) fn parse_size(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, factor) = match lower.strip_suffix("kib").or_else(|| lower.strip_suffix('k')) {
        Some(d) => (d, 1024),
        None => (lower.strip_suffix('b').unwrap_or(&lower), 1),
    };
    match digits.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n * factor),
        _ => Err(format!("`{s}` is not a size in bytes (like 64 or 16k)")),
    }
}

/// The longest duration [`parse_secs`] takes: about 31 years, so that adding it to a clock
/// reading can never overflow.
const MAX_SECS: f64 = 1e9;

/// Parses a duration given in seconds, like "2" or "0.3": more than 0, at most 1e9. Shared by
/// `echo bench --duration` and `echo --idle-timeout`.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_SECS => Ok(Duration::from_secs_f64(secs)),
        _ => {
            Err(format!("`{text}` is not a number of seconds more than 0 and at most {MAX_SECS:e}"))
        }
    }
}
