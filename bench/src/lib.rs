//! The harness behind `echo bench`: every server of an `echo` build under the same load, side
//! by side.
//!
//! A crate of its own so that `echo/` holds only the servers, the CLI and the client; `echo`
//! calls [`run`] for its `bench` subcommand, and the servers measured are children of that same
//! binary, so one build is all a run needs.
//!
//! # What a run does
//!
//! For each round, for each server, for each point of the matrix, a fresh server child is
//! started (the `echo` binary that called [`run`], `--runtime NAME --addr 127.0.0.1:0`, see `server.rs`) on one core, and
//! measured from the other core:
//!
//! - a *load point* (C connections, S-byte messages) runs the closed-loop generator of `load.rs`
//!   on the `mini` runtime: warm-up, then a measured interval of `--duration` seconds;
//! - an *idle point* (N connections) holds N silent connections for `--duration` seconds
//!   (`idle.rs`).
//!
//! Rounds are interleaved (round 1 of every server, then round 2, ...), so that a disturbance of
//! the machine hits one round of several servers rather than every round of one; each figure
//! reported is the median over the rounds. With `--slice MS`, a load point goes further: all its
//! servers run at once and the load moves between them every MS milliseconds, so that they are
//! measured over the same seconds (`interleave.rs`). A point that fails (the server does not
//! start, dies, or breaks a connection or a reply) is reported as failed, the bench goes on with
//! the others, and exits non-zero at the end. `report.rs` writes the Markdown table, `json.rs` the
//! JSON lines, `chart.rs` the SVG charts, `measure.rs` reads `/proc` and `getrusage`.
//!
//! # Cores
//!
//! With two or more CPUs, the bench pins itself (the load generator, one thread) to its first
//! allowed CPU and each server to the second; threads a server starts stay on its core. With
//! one CPU nothing is pinned, and the figures say so.
//!
//! With `--server-cpu PERCENT`, each server also runs in a cgroup whose CPU quota is PERCENT of
//! one core (`cgroup.rs`): the server, not the load generator, is then the bottleneck, and its
//! busy figure is reported as a fraction of that allowance.

mod cgroup;
mod chart;
mod error;
mod idle;
mod interleave;
mod json;
mod load;
mod measure;
mod plan;
mod report;
mod server;
mod stats;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use cgroup::Cgroup;
use error::RunError;
pub use plan::parse_secs;
use plan::Plan;
use report::{Entry, Figures, Meta, Point};
use server::Server;

/// Measure every server of this build: throughput, latency, CPU and memory under a closed-loop
/// load, and the cost of idle connections. Writes a Markdown table (also on stdout), JSON lines
/// and SVG charts to --out.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Servers to measure, comma-separated [default: every server this build has]. A name
    /// `mini:BACKEND` (e.g. mini:uring,mini:epoll) is `--runtime mini --backend BACKEND`, to
    /// compare mini's poller backends in one run.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    servers: Option<Vec<String>>,

    /// Connection counts of the load points [default: 1,10,100,1000; --quick: 1,100].
    #[arg(long, value_delimiter = ',', value_name = "C,...")]
    connections: Option<Vec<usize>>,

    /// Message sizes in bytes; a k suffix means KiB [default: 64,16k].
    #[arg(long, value_delimiter = ',', value_name = "S,...", value_parser = plan::parse_size)]
    sizes: Option<Vec<usize>>,

    /// Seconds measured per point (after a warm-up of a quarter of it, at most 0.5 s); also how
    /// long idle connections are held [default: 2; --quick: 0.5].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,

    /// Rounds, interleaved across servers; figures are medians over them [default: 3; --quick: 1].
    #[arg(long, value_name = "R")]
    rounds: Option<usize>,

    /// Idle connection counts; 0 skips the idle phase [default: 1000,10000; --quick: 1000].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    idle: Option<Vec<usize>>,

    /// Messages in flight per connection.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pipeline: usize,

    /// A small matrix with short durations: the whole run takes well under a minute. Flags given
    /// explicitly still win.
    #[arg(long)]
    quick: bool,

    /// Cap each server at PERCENT of one core (1-100) with a cgroup CPU quota (CFS bandwidth:
    /// PERCENT of a 10 ms period), so that the server, not the load generator, is the
    /// bottleneck and servers are compared at saturation. Latencies then include throttling
    /// pauses of up to 10 ms. Needs a writable cgroup `cpu` controller (v2 or v1; usually root)
    /// [default: no cap].
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    server_cpu: Option<u8>,

    /// Run all the servers of a load point at once and move the load from one to the next
    /// every MS milliseconds, never to the same one twice in a row, so that all are measured
    /// over the same seconds: the machine's drifts then cancel in their ratios (see
    /// docs/benchmarks.md). Each server gets --duration seconds of load per round (rounded up
    /// to whole turns). Needs two servers or more, not `spin` (which would burn the shared core
    /// while it waits for its turn); one server failing fails the point for all of them
    /// [default: one server at a time].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=10_000))]
    slice: Option<u64>,

    /// Directory for results.md, results.jsonl and the SVG charts. `--out docs/bench` replaces
    /// the committed results [default: bench/ in cargo's target directory: $CARGO_TARGET_DIR,
    /// else the one this binary was built in, else ./target]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs the bench; an error if the arguments are wrong or if any point failed.
///
/// Must be called from the `echo` binary itself (`echo bench`): each server is started as a
/// child of the running executable, `--runtime NAME`, where `servers` lists the names it takes.
pub fn run(args: BenchArgs, servers: &[String]) -> Result<()> {
    let plan = Plan::new(args, servers)?;
    // First, so that a machine without writable cgroups fails before anything runs. Dropped (and
    // so removed) when `run` returns, whichever way.
    let cgroup = plan
        .server_cpu
        .map(Cgroup::create)
        .transpose()
        .context("--server-cpu: cannot set up a cgroup with a CPU quota for the servers")?;

    // 1. Cores, descriptors, signals. Pin first: threads started later inherit the affinity.
    let cpus = measure::allowed_cpus().context("cannot read this process's CPU affinity")?;
    let (server_cpu, pinning) = match cpus[..] {
        [load_cpu, server_cpu, ..] => {
            measure::pin(&measure::cpu_set(load_cpu)).context("cannot pin the load generator")?;
            (
                Some(server_cpu),
                format!("server on CPU {server_cpu}, load generator on CPU {load_cpu}"),
            )
        }
        _ => (None, "not pinned (one CPU: server and load generator share it)".to_owned()),
    };
    let limit = measure::raise_open_files_limit().context("cannot raise the open-files limit")?;
    let needed =
        plan.points.iter().map(|p| plan.connections_at_once(p)).max().unwrap_or(0) as u64 + 64;
    if needed > limit {
        bail!("this matrix needs about {needed} descriptors, but the open-files limit is {limit}");
    }
    server::kill_children_on_signals()?;
    if let (Some(cgroup), Some(percent)) = (&cgroup, plan.server_cpu) {
        let (quota, period) = cgroup::quota_period(percent);
        eprintln!(
            "bench: server cgroup {} (CPU quota {quota} µs per {period} µs: {percent}% of a core)",
            cgroup.dir().display()
        );
    }

    // 2. Run every point, round by round, one progress line each.
    let total = plan.rounds * plan.servers.len() * plan.points.len();
    eprintln!(
        "bench: {} servers × {} points × {} rounds = {total} runs, {} s each after {} s warm-up; \
         {pinning}; estimated {}",
        plan.servers.len(),
        plan.points.len(),
        plan.rounds,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        minutes(plan.estimate())
    );
    let started = Instant::now();
    let mut entries: Vec<Entry> = plan
        .servers
        .iter()
        .flat_map(|s| {
            plan.points.iter().map(|&point| Entry { server: s.clone(), point, rounds: vec![] })
        })
        .collect();
    let mut done = 0;
    for round in 1..=plan.rounds {
        for index in round_order(entries.len(), round) {
            let entry = &entries[index];
            let together = plan.slice.is_some() && matches!(entry.point, Point::Load { .. });
            if together && entry.rounds.len() == round {
                continue; // run already, with the first of its servers
            }
            let t = Instant::now();
            let point = entry.point;
            let outcomes: Vec<(String, _)> = if together {
                let order = round_order(plan.servers.len(), round);
                let names: Vec<&str> = order.map(|i| plan.servers[i].as_str()).collect();
                let outcomes = run_together(&names, point, &plan, server_cpu, cgroup.as_ref());
                names.into_iter().map(str::to_owned).zip(outcomes).collect()
            } else {
                let outcome = run_point(&entry.server, point, &plan, server_cpu, cgroup.as_ref());
                vec![(entry.server.clone(), outcome)]
            };
            let took = t.elapsed().as_secs_f64();
            let took =
                if together { format!("{took:.1} s, in turns") } else { format!("{took:.1} s") };
            for (server, outcome) in outcomes {
                let entry = entries
                    .iter_mut()
                    .find(|e| e.server == server && e.point == point)
                    .expect("an entry for every server and point");
                done += 1;
                eprintln!(
                    "[{done}/{total}] {} {} round {round}: {} ({took})",
                    entry.server,
                    entry.point,
                    summary(&outcome, plan.server_cpu)
                );
                entry.rounds.push(outcome);
            }
        }
    }
    eprintln!("bench: done in {}", minutes(started.elapsed()));

    // 3. Report.
    let meta = Meta {
        date: report::utc_now(),
        commit: commit(),
        command: command_line(),
        // The CPUs allowed before the bench pinned itself to one of them.
        cores: cpus.len(),
        pinning,
        duration_s: plan.duration.as_secs_f64(),
        warmup_s: plan.warmup.as_secs_f64(),
        rounds: plan.rounds,
        pipeline: plan.pipeline,
        server_cpu_percent: plan.server_cpu,
        slice_ms: plan.slice.map(|d| d.as_millis() as u64),
    };
    let markdown = report::markdown(&meta, &entries);
    print!("{markdown}");
    write_outputs(&plan, &meta, &entries, &markdown)?;

    let failed = entries.iter().map(|e| e.errors().count()).sum::<usize>();
    if failed > 0 {
        bail!("{failed} of {total} runs failed (see Errors above)");
    }
    Ok(())
}

/// One run of one point on a fresh server (pinned to `cpu`, in `cgroup`, if given).
fn run_point(
    name: &str,
    point: Point,
    plan: &Plan,
    cpu: Option<usize>,
    cgroup: Option<&Cgroup>,
) -> Result<Figures, RunError> {
    let mut server = Server::start(name, cpu, cgroup)?;
    let outcome = match point {
        Point::Load { connections, size } => {
            load::run(&mut server, &plan.load_spec(connections, size)).map(Figures::Load)
        }
        Point::Idle { connections } => {
            idle::run(&mut server, connections, plan.duration).map(Figures::Idle)
        }
    };
    outcome.map_err(|e| e.or_dead(std::slice::from_mut(&mut server)))
}

/// One round of a load point on every server in `names` at once, in turns (`--slice`): each
/// server's outcome, in the order of `names`. A failure fails the point for all of them.
fn run_together(
    names: &[&str],
    point: Point,
    plan: &Plan,
    cpu: Option<usize>,
    cgroup: Option<&Cgroup>,
) -> Vec<Result<Figures, RunError>> {
    let Point::Load { connections, size } = point else {
        unreachable!("only load points run together")
    };
    let spec = plan.load_spec(connections, size);
    let slice = plan.slice.expect("run_together is for --slice");
    let outcome = names
        .iter()
        .map(|name| Server::start(name, cpu, cgroup))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|mut servers| {
            interleave::run(&mut servers, &spec, slice).map_err(|e| e.or_dead(&mut servers))
        });
    match outcome {
        Ok(figures) => figures.into_iter().map(|f| Ok(Figures::Load(f))).collect(),
        Err(e) => names.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// The tail of a progress line: the headline figure, or the failure. With a cap, the server's
/// busy is a fraction of its allowance.
fn summary(outcome: &Result<Figures, RunError>, cap: Option<u8>) -> String {
    match outcome {
        Ok(Figures::Load(f)) => format!(
            "{} msg/s, p99 {:.0} µs, server {:.0}% busy{}",
            report::si(f.msgs_per_s),
            f.p99_us,
            report::busy_of_cap(f.server_busy, cap) * 100.0,
            cap.map(|c| format!(" (of its {c}% cap)")).unwrap_or_default()
        ),
        Ok(Figures::Idle(f)) => format!(
            "{:.2} KiB per connection ({:.0} held, opened in {:.1} s), server {:.1}% busy",
            f.rss_per_conn_bytes / 1024.0,
            f.held,
            f.open_s,
            f.server_busy * 100.0
        ),
        Err(e) => format!("FAILED: {e}"),
    }
}

fn write_outputs(plan: &Plan, meta: &Meta, entries: &[Entry], markdown: &str) -> Result<()> {
    let out = &plan.out;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut files =
        vec![("results.md", markdown.to_owned()), ("results.jsonl", json::lines(meta, entries))];
    files.extend(chart::throughput(entries, &plan.servers).map(|svg| ("msgs_per_s.svg", svg)));
    files.extend(chart::idle_memory(entries, &plan.servers).map(|svg| ("idle_rss.svg", svg)));
    for (name, text) in &files {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    eprintln!("bench: wrote {} in {}", names.join(", "), out.display());
    Ok(())
}

/// The order in which round `round` (from 1) runs `count` entries: forwards in odd rounds,
/// backwards in even ones. With a fixed order each server would always follow the same one and
/// inherit whatever that one leaves behind in the machine (docs/benchmarks.md); reversing
/// every other round makes each server follow each neighbour equally often, and cancels a
/// steady drift across a pair of rounds.
fn round_order(count: usize, round: usize) -> impl Iterator<Item = usize> {
    let forwards = round % 2 == 1;
    (0..count).map(move |i| if forwards { i } else { count - 1 - i })
}

/// `git rev-parse --short HEAD`, with `-dirty` if tracked files have changed; None outside git.
fn commit() -> Option<String> {
    let git =
        |args: &[&str]| Command::new("git").args(args).output().ok().filter(|o| o.status.success());
    let head = String::from_utf8(git(&["rev-parse", "--short", "HEAD"])?.stdout).ok()?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|o| !o.stdout.is_empty());
    Some(format!("{}{}", head.trim(), if dirty { "-dirty" } else { "" }))
}

/// The command line as typed, with the program shown as `echo`.
fn command_line() -> String {
    let args = std::env::args().skip(1).map(|a| {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            format!("'{}'", a.replace('\'', r"'\''"))
        } else {
            a
        }
    });
    std::iter::once("echo".to_owned()).chain(args).collect::<Vec<_>>().join(" ")
}

/// "7 min 40 s", "38 s".
fn minutes(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounds_alternate_direction() {
        let order = |round| super::round_order(3, round).collect::<Vec<_>>();
        assert_eq!(order(1), [0, 1, 2]);
        assert_eq!(order(2), [2, 1, 0]);
        assert_eq!(order(3), [0, 1, 2]);
    }
}
