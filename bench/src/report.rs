//! The figures of one run of a point, their medians over the rounds, and the Markdown table
//! (stdout and `results.md`); [`super::json`] writes the same entries as JSON lines.
//!
//! Each figure's median is taken on its own, over the rounds that succeeded (with an even count,
//! the mean of the middle two): the median of p99 is not necessarily the p99 of the round with
//! the median throughput.

use std::fmt::{self, Write as _};

use super::error::RunError;
use super::stats::{median, median_interval, median_quartiles};

/// One server × point: the figures of each round, or why that round failed.
#[derive(Debug)]
pub struct Entry {
    pub server: String,
    pub point: Point,
    pub rounds: Vec<Result<Figures, RunError>>,
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// C connections in a closed loop of S-byte messages.
    Load { connections: usize, size: usize },
    /// N silent connections held open.
    Idle { connections: usize },
}

/// The figures of one round of a point.
#[derive(Debug, Clone)]
pub enum Figures {
    Load(LoadFigures),
    Idle(IdleFigures),
}

/// One load point, as measured over its interval.
#[derive(Debug, Clone, Default)]
pub struct LoadFigures {
    /// Replies completed inside the interval.
    pub messages: f64,
    pub msgs_per_s: f64,
    /// Payload echoed per second, each way, in 10^6 bytes.
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The server's CPU time (user + system, all threads) per message.
    pub server_cpu_per_msg_us: f64,
    /// The server's CPU time over wall time (1.0: one core fully used).
    pub server_busy: f64,
    pub server_rss_kib: f64,
    /// The load generator's own CPU time over wall time: near 1.0, it was the bottleneck.
    pub load_busy: f64,
    /// Connections that had no reply at all by the end of the interval.
    pub starved: f64,
}

/// One idle point: N silent connections held for a while.
#[derive(Debug, Clone, Default)]
pub struct IdleFigures {
    /// Connections the server actually held (fewer than N if it refused some).
    pub held: f64,
    /// Seconds from the first connect until the server held them all (or stopped taking more).
    pub open_s: f64,
    /// The server's CPU time over wall time during the hold.
    pub server_busy: f64,
    pub rss_before_kib: f64,
    pub rss_kib: f64,
    /// (RSS with the connections held - RSS before) / connections held.
    pub rss_per_conn_bytes: f64,
}

/// About the whole run.
#[derive(Debug, Clone)]
pub struct Meta {
    pub date: String,
    pub commit: Option<String>,
    pub command: String,
    pub cores: usize,
    /// "server on CPU 1, load generator on CPU 0", or why not pinned.
    pub pinning: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rounds: usize,
    pub pipeline: usize,
    /// `--server-cpu`: each server's cap in percent of one core; None: not capped.
    pub server_cpu_percent: Option<u8>,
    /// `--slice`: the length of a server's turn, in milliseconds, when the servers of a load
    /// point run at once; None: one server at a time.
    pub slice_ms: Option<u64>,
}

/// The load generator is called the bottleneck at or above this busy fraction; so is a capped
/// server at or above this fraction of its allowance.
pub const LOAD_BOUND: f64 = 0.9;

/// A server's busy fraction (CPU time / wall time, 1.0 = one core) relative to its allowance:
/// with a 50% cap, 0.5 becomes 1.0. Unchanged without a cap.
pub fn busy_of_cap(busy: f64, cap: Option<u8>) -> f64 {
    match cap {
        Some(percent) => busy * 100.0 / f64::from(percent),
        None => busy,
    }
}

impl Entry {
    fn ok(&self) -> impl Iterator<Item = &Figures> {
        self.rounds.iter().filter_map(|r| r.as_ref().ok())
    }

    pub fn errors(&self) -> impl Iterator<Item = &RunError> {
        self.rounds.iter().filter_map(|r| r.as_ref().err())
    }

    /// Medians over the successful rounds of a load point; None if none succeeded.
    pub fn load(&self) -> Option<LoadFigures> {
        let runs: Vec<&LoadFigures> = self
            .ok()
            .filter_map(|f| if let Figures::Load(l) = f { Some(l) } else { None })
            .collect();
        let m = |f: fn(&LoadFigures) -> f64| median(runs.iter().map(|r| f(r)));
        (!runs.is_empty()).then(|| LoadFigures {
            messages: m(|r| r.messages),
            msgs_per_s: m(|r| r.msgs_per_s),
            mb_per_s: m(|r| r.mb_per_s),
            p50_us: m(|r| r.p50_us),
            p99_us: m(|r| r.p99_us),
            p999_us: m(|r| r.p999_us),
            server_cpu_per_msg_us: m(|r| r.server_cpu_per_msg_us),
            server_busy: m(|r| r.server_busy),
            server_rss_kib: m(|r| r.server_rss_kib),
            load_busy: m(|r| r.load_busy),
            starved: m(|r| r.starved),
        })
    }

    /// Medians over the successful rounds of an idle point; None if none succeeded.
    pub fn idle(&self) -> Option<IdleFigures> {
        let runs: Vec<&IdleFigures> = self
            .ok()
            .filter_map(|f| if let Figures::Idle(i) = f { Some(i) } else { None })
            .collect();
        let m = |f: fn(&IdleFigures) -> f64| median(runs.iter().map(|r| f(r)));
        (!runs.is_empty()).then(|| IdleFigures {
            held: m(|r| r.held),
            open_s: m(|r| r.open_s),
            server_busy: m(|r| r.server_busy),
            rss_before_kib: m(|r| r.rss_before_kib),
            rss_kib: m(|r| r.rss_kib),
            rss_per_conn_bytes: m(|r| r.rss_per_conn_bytes),
        })
    }

    /// "", or "2/3 rounds failed" for the note column.
    fn failed_note(&self) -> String {
        match self.errors().count() {
            0 => String::new(),
            n => format!("{n}/{} rounds failed", self.rounds.len()),
        }
    }
}

/// The server the others are compared with round by round: the raw epoll loop, the ceiling
/// that a readiness-based runtime can approach.
pub const BASELINE: &str = "epoll";

/// Per round in which both succeeded: `entry`'s server CPU per message over `base`'s.
///
/// The rounds are interleaved (every server once, then again), so the two figures of a round
/// were measured seconds apart: their ratio cancels the slow drifts of a shared machine, which
/// move a whole round, and the median of these ratios is steadier than the ratio of medians.
pub fn cpu_ratios(entry: &Entry, base: &Entry) -> Vec<f64> {
    let cpu = |r: &Result<Figures, RunError>| match r {
        Ok(Figures::Load(l)) if l.server_cpu_per_msg_us > 0.0 => Some(l.server_cpu_per_msg_us),
        _ => None,
    };
    let pairs = entry.rounds.iter().zip(&base.rounds);
    pairs.filter_map(|(a, b)| Some(cpu(a)? / cpu(b)?)).collect()
}

/// The baseline's entry for the same point as `entry`, if the run has one (and it is another).
pub fn baseline_for<'a>(entries: &'a [Entry], entry: &Entry) -> Option<&'a Entry> {
    let found = entries.iter().find(|b| b.server == BASELINE && b.point == entry.point)?;
    (entry.server != BASELINE).then_some(found)
}

/// `entry`'s [`cpu_ratios`] against the baseline's entry for its point; None if the run has
/// no baseline there (or is it) or no round in which both succeeded.
pub fn ratios_to_baseline(entries: &[Entry], entry: &Entry) -> Option<Vec<f64>> {
    let ratios = cpu_ratios(entry, baseline_for(entries, entry)?);
    (!ratios.is_empty()).then_some(ratios)
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Load { connections, size } => write!(f, "C={connections} S={size}"),
            Point::Idle { connections } => write!(f, "idle N={connections}"),
        }
    }
}

/// The Markdown report: a header, the load table, the idle table, notes and errors.
pub fn markdown(meta: &Meta, entries: &[Entry]) -> String {
    let mut s = String::from("# echo bench results\n\n");
    let commit = meta.commit.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        s,
        "- {} UTC, commit `{commit}`, {} cores; {}",
        meta.date, meta.cores, meta.pinning
    );
    let _ = writeln!(s, "- command: `{}`", meta.command);
    let _ = writeln!(
        s,
        "- each point: {} s measured after {} s of warm-up; median of {} round(s); pipeline {}",
        meta.duration_s, meta.warmup_s, meta.rounds, meta.pipeline
    );
    if let Some(ms) = meta.slice_ms {
        let _ = writeln!(
            s,
            "- servers interleaved: all the servers of a load point run at once, and the load \
             moves from one to the next every {ms} ms (each gets the measured time above, in whole \
             turns); idle points run one server at a time"
        );
    }
    let cap = meta.server_cpu_percent;
    if let Some(percent) = cap {
        let (quota, period) = super::cgroup::quota_period(percent);
        let _ = writeln!(
            s,
            "- server capped at {percent}% of a core (cgroup CPU quota: {quota} µs per {period} µs \
             period); server busy is a fraction of that allowance"
        );
    }

    let loads: Vec<&Entry> =
        entries.iter().filter(|e| matches!(e.point, Point::Load { .. })).collect();
    if !loads.is_empty() {
        s += "\n## Closed loop: C connections, S-byte messages\n\n";
        let busy = match cap {
            Some(percent) => format!("server busy (of {percent}% cap)"),
            None => "server busy".to_owned(),
        };
        let _ = writeln!(
            s,
            "| server | C | S | msg/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/msg \
             | {busy} | server RSS MiB | load gen busy | note |"
        );
        s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
        for e in loads {
            let Point::Load { connections, size } = e.point else { continue };
            let mut note = e.failed_note();
            let cells = match e.load() {
                Some(f) => {
                    let busy = busy_of_cap(f.server_busy, cap);
                    // A capped server at its allowance set the pace, however busy the generator.
                    let server_bound = cap.is_some() && busy >= LOAD_BOUND;
                    if f.load_busy >= LOAD_BOUND && !server_bound {
                        note = join_note(note, "load generator bound");
                    }
                    if f.starved > 0.0 {
                        note = join_note(note, &format!("{:.0} connections starved", f.starved));
                    }
                    format!(
                        "{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0}% | {:.1} | {:.0}%",
                        si(f.msgs_per_s),
                        f.mb_per_s,
                        f.p50_us,
                        f.p99_us,
                        f.p999_us,
                        f.server_cpu_per_msg_us,
                        busy * 100.0,
                        f.server_rss_kib / 1024.0,
                        f.load_busy * 100.0
                    )
                }
                None => "failed | | | | | | | |".to_owned(),
            };
            let _ = writeln!(
                s,
                "| {} | {connections} | {} | {cells} | {note} |",
                e.server,
                bytes(size)
            );
        }
    }

    paired_section(&mut s, entries, meta.slice_ms.is_some());

    let idles: Vec<&Entry> =
        entries.iter().filter(|e| matches!(e.point, Point::Idle { .. })).collect();
    if !idles.is_empty() {
        s += "\n## Idle: N silent connections held open\n\n";
        s += "| server | N | held | opened in s | server CPU | RSS before MiB | RSS with N MiB \
              | RSS per connection KiB | note |\n";
        s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
        for e in idles {
            let Point::Idle { connections } = e.point else { continue };
            let mut note = e.failed_note();
            let cells = match e.idle() {
                Some(f) => {
                    if f.held < connections as f64 {
                        note = join_note(note, "refused some connections");
                    }
                    format!(
                        "{:.0} | {:.2} | {:.1}% | {:.1} | {:.1} | {:.2}",
                        f.held,
                        f.open_s,
                        f.server_busy * 100.0,
                        f.rss_before_kib / 1024.0,
                        f.rss_kib / 1024.0,
                        f.rss_per_conn_bytes / 1024.0
                    )
                }
                None => "failed | | | | | ".to_owned(),
            };
            let _ = writeln!(s, "| {} | {connections} | {cells} | {note} |", e.server);
        }
    }

    s += "\n## Reading the figures\n\n";
    s += "- msg/s: replies completed per second; MB/s: payload echoed per second, each way \
          (10^6 B). Latency: from the start of a message's sending to the last byte of its \
          reply.\n";
    s += "- starved: connections that got no reply at all by the end of the interval (the \
          bench waits up to 3 s for every connection's first reply before its warm-up).\n";
    s += "- server CPU: user + system time of all its threads (`/proc/PID/stat`, 10 ms ticks) \
          over the measured interval; busy = CPU time / wall time, 100% = one core.\n";
    if let Some(percent) = cap {
        let (_, period) = super::cgroup::quota_period(percent);
        let _ = writeln!(
            s,
            "- server capped: each server ran in a cgroup allowed {percent}% of one core (CFS \
             bandwidth quota), so the server, not the load generator, sets the pace; server busy \
             in the load table is CPU time / wall time / {percent}% (100% = the whole allowance; \
             the idle table's server CPU stays a fraction of a core). Latencies include \
             throttling pauses of up to one period ({} ms).",
            period as f64 / 1000.0
        );
    }
    let _ = writeln!(
        s,
        "- load gen busy: the load generator's own CPU time / wall time; at {:.0}% or more it, not \
         the server, set the pace (\"load generator bound\").",
        LOAD_BOUND * 100.0
    );
    if entries.iter().any(|e| e.server == "spin") {
        s += "- `spin` never sleeps: it burns its whole core even when idle, so its busy is about \
              100% whatever the load and its CPU per message mostly counts spinning.\n";
    }

    let errors: Vec<String> = entries
        .iter()
        .flat_map(|e| e.errors().map(move |err| format!("- {} {}: {err}", e.server, e.point)))
        .collect();
    if !errors.is_empty() {
        s += "\n## Errors\n\n";
        s += &errors.join("\n");
        s += "\n";
    }
    s
}

/// The table of CPU per message against the baseline's in the same round, if the run has one.
fn paired_section(s: &mut String, entries: &[Entry], interleaved: bool) {
    let rows: Vec<(&Entry, Vec<f64>)> =
        entries.iter().filter_map(|e| Some((e, ratios_to_baseline(entries, e)?))).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Server CPU per message over `{BASELINE}`'s, round by round\n");
    let when = if interleaved { "over the same seconds, in turns" } else { "once, seconds apart" };
    let _ = writeln!(
        s,
        "Each round measures every server {when}; the ratio within a round cancels the \
         machine's slow drifts. Median and quartiles over the rounds, and a 95% confidence \
         interval for the median (order statistics; none under 6 rounds): a target inside it \
         is neither met nor missed by this run.\n"
    );
    *s += "| server | C | S | median | 95% interval of the median | 25%–75% | rounds |\n\
           | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (e, ratios) in rows {
        let Point::Load { connections, size } = e.point else { continue };
        let (mid, lo, hi) = median_quartiles(&ratios);
        let interval = match median_interval(&ratios) {
            Some((low, high)) => format!("{low:.3}–{high:.3}"),
            None => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {connections} | {} | {mid:.3} | {interval} | {lo:.3}–{hi:.3} | {} |",
            e.server,
            bytes(size),
            ratios.len()
        );
    }
}

fn join_note(note: String, more: &str) -> String {
    if note.is_empty() {
        more.to_owned()
    } else {
        format!("{note}; {more}")
    }
}

/// 95300 -> "95.3k", 1250000 -> "1.25M".
pub fn si(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// 64 -> "64 B", 16384 -> "16 KiB".
pub fn bytes(n: usize) -> String {
    if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

/// The current time in UTC to the second, as `2026-11-29T14:03:09Z`.
pub fn utc_now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_quotes() {
        assert_eq!(si(95_300.0), "95.3k");
        assert_eq!(bytes(16384), "16 KiB");
        assert!(utc_now().starts_with("20"));
    }

    #[test]
    fn ratios_pair_the_rounds_in_which_both_servers_succeeded() {
        let load = |cpu| {
            Ok(Figures::Load(LoadFigures { server_cpu_per_msg_us: cpu, ..Default::default() }))
        };
        let point = Point::Load { connections: 1, size: 64 };
        let entry = |server: &str, rounds| Entry { server: server.into(), point, rounds };
        let base = entry(
            BASELINE,
            vec![load(2.0), Err(RunError::Server("died".into())), load(4.0), load(5.0)],
        );
        let other = entry(
            "mini",
            vec![load(3.0), load(1.0), load(4.0), Err(RunError::Server("died".into()))],
        );
        assert_eq!(cpu_ratios(&other, &base), vec![1.5, 1.0]);
        let entries = [base, other];
        assert!(baseline_for(&entries, &entries[1]).is_some());
        assert!(
            baseline_for(&entries, &entries[0]).is_none(),
            "no ratio of the baseline to itself"
        );
    }
}
