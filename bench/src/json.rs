//! `results.jsonl`: one JSON object per server × point, with every figure (the medians), the
//! per-round headline figures, the errors, and the run's metadata (`server_cpu_percent`: the
//! `--server-cpu` cap, null without one; `server_busy` stays a fraction of one core;
//! `slice_ms`: the `--slice` turn, null where servers ran one at a time (idle points always do);
//! `server_cpu_per_msg_vs_epoll`: the median over the rounds of the server's CPU per message
//! over the epoll loop's in the same round, null without the epoll server). Every line
//! carries the metadata, so that the lines of several runs can be concatenated into one file and
//! still be told apart.
//!
//! Each line is a `serde_json` object; numbers are rounded to 3 decimals, and a figure that
//! could not be measured (a failed point, no baseline) is `null`.

use serde_json::{Map, Value};

use super::report::{self, Entry, Figures, IdleFigures, LoadFigures, Meta, Point};
use super::stats;

/// One JSON object per entry, each line with the figures (medians), the per-round throughput and
/// CPU per message or RSS, the errors and the run's metadata.
pub fn lines(meta: &Meta, entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let mut o = Object::default();
        let errors: Vec<String> = e.errors().map(ToString::to_string).collect();
        match e.point {
            Point::Load { connections, size } => {
                let f = e.load();
                let f = f.as_ref();
                let num = |get: fn(&LoadFigures) -> f64| f.map(get);
                o.str("kind", "load").str("server", &e.server);
                o.num("connections", Some(connections as f64)).num("size", Some(size as f64));
                o.num("pipeline", Some(meta.pipeline as f64));
                o.num("msgs_per_s", num(|f| f.msgs_per_s)).num("mb_per_s", num(|f| f.mb_per_s));
                o.num("p50_us", num(|f| f.p50_us)).num("p99_us", num(|f| f.p99_us));
                o.num("p999_us", num(|f| f.p999_us)).num("messages", num(|f| f.messages));
                o.num("server_cpu_per_msg_us", num(|f| f.server_cpu_per_msg_us));
                o.num("server_busy", num(|f| f.server_busy));
                o.num("server_rss_kib", num(|f| f.server_rss_kib));
                o.num("load_busy", num(|f| f.load_busy)).num("starved", num(|f| f.starved));
                let by_round = e.rounds.iter().map(|r| match r {
                    Ok(Figures::Load(l)) => Some(l.msgs_per_s),
                    _ => None,
                });
                o.nums("msgs_per_s_by_round", by_round);
                let by_round = e.rounds.iter().map(|r| match r {
                    Ok(Figures::Load(l)) => Some(l.server_cpu_per_msg_us),
                    _ => None,
                });
                o.nums("server_cpu_per_msg_us_by_round", by_round);
                // Against the raw epoll loop, round by round (see `report::cpu_ratios`).
                let ratios = report::ratios_to_baseline(entries, e);
                o.num("server_cpu_per_msg_vs_epoll", ratios.map(|r| stats::median(r.into_iter())));
            }
            Point::Idle { connections } => {
                let f = e.idle();
                let f = f.as_ref();
                let num = |get: fn(&IdleFigures) -> f64| f.map(get);
                o.str("kind", "idle").str("server", &e.server);
                o.num("connections", Some(connections as f64)).num("held", num(|f| f.held));
                o.num("open_s", num(|f| f.open_s));
                o.num("server_busy", num(|f| f.server_busy));
                o.num("rss_before_kib", num(|f| f.rss_before_kib));
                o.num("rss_kib", num(|f| f.rss_kib));
                o.num("rss_per_conn_bytes", num(|f| f.rss_per_conn_bytes));
                o.num("hold_s", Some(meta.duration_s));
                let by_round = e.rounds.iter().map(|r| match r {
                    Ok(Figures::Idle(i)) => Some(i.rss_per_conn_bytes),
                    _ => None,
                });
                o.nums("rss_per_conn_bytes_by_round", by_round);
            }
        }
        o.num("rounds", Some(e.rounds.len() as f64));
        o.strs("errors", &errors);
        o.str("date", &meta.date);
        match &meta.commit {
            Some(c) => o.str("commit", c),
            None => o.num("commit", None),
        };
        o.str("command", &meta.command).num("cores", Some(meta.cores as f64));
        o.str("pinning", &meta.pinning);
        o.num("server_cpu_percent", meta.server_cpu_percent.map(f64::from));
        let in_turns = matches!(e.point, Point::Load { .. });
        o.num("slice_ms", meta.slice_ms.filter(|_| in_turns).map(|ms| ms as f64));
        o.num("duration_s", Some(meta.duration_s)).num("warmup_s", Some(meta.warmup_s));
        out += &o.finish();
        out += "\n";
    }
    out
}

/// A flat JSON object under construction, its keys in the order they are added.
#[derive(Default)]
struct Object(Map<String, Value>);

impl Object {
    fn put(&mut self, key: &str, value: Value) -> &mut Self {
        self.0.insert(key.to_owned(), value);
        self
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.put(key, value.into())
    }

    /// A number rounded to 3 decimals; `null` for None, NaN or infinity.
    fn num(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        self.put(key, number(value))
    }

    fn nums(&mut self, key: &str, values: impl Iterator<Item = Option<f64>>) -> &mut Self {
        self.put(key, values.map(number).collect())
    }

    fn strs(&mut self, key: &str, values: &[String]) -> &mut Self {
        self.put(key, values.iter().map(|v| Value::from(v.as_str())).collect())
    }

    fn finish(self) -> String {
        Value::Object(self.0).to_string()
    }
}

/// `value` rounded to 3 decimals, as an integer when it is one (`2`, not `2.0`).
fn number(value: Option<f64>) -> Value {
    match value {
        Some(x) if x.is_finite() => {
            let rounded = (x * 1000.0).round() / 1000.0;
            if rounded.fract() == 0.0 && rounded.abs() < 9e15 {
                Value::from(rounded as i64)
            } else {
                Value::from(rounded)
            }
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_and_strings_escaped() {
        assert_eq!(number(Some(95312.34567)).to_string(), "95312.346");
        assert_eq!(number(Some(2.0)).to_string(), "2");
        assert_eq!(number(Some(-0.0001)).to_string(), "0");
        assert_eq!(number(Some(f64::NAN)), Value::Null);
        let mut o = Object::default();
        o.str("b", "a \"b\"\n").num("a", Some(1.5));
        assert_eq!(o.finish(), r#"{"b":"a \"b\"\n","a":1.5}"#);
    }
}
