//! The two SVG charts: messages per second against connections (one line per server, log x
//! axis) and memory per idle connection (bars per server).
//!
//! Written by hand rather than with `plotters`: two fixed chart shapes need about 200 lines of
//! `format!`, while the crate would bring in several dependencies for them and write verbose,
//! less stable SVG. Here the output is small, deterministic (same figures, same bytes: clean diffs
//! when the charts are committed under `docs/bench`) and plain enough to edit by hand.

use std::fmt::Write as _;

use super::report::{bytes, si, Entry, Point};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
/// The plot area: left, top, right, bottom edges (the legend sits right of it).
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const RIGHT: f64 = 600.0;
const BOTTOM: f64 = 390.0;

/// A line of the line chart: its name and its (x, y) points; no y where the point failed.
type Series = (String, Vec<(f64, Option<f64>)>);

const COLORS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// Messages/s against connections at the smallest message size (64 B in the default matrix),
/// one line per server; None if there are no load points.
pub fn throughput(entries: &[Entry], servers: &[String]) -> Option<String> {
    let size = entries
        .iter()
        .filter_map(|e| match e.point {
            Point::Load { size, .. } => Some(size),
            Point::Idle { .. } => None,
        })
        .min()?;
    let series: Vec<Series> = servers
        .iter()
        .map(|server| {
            let points = entries
                .iter()
                .filter(|e| &e.server == server)
                .filter_map(|e| match e.point {
                    Point::Load { connections, size: s } if s == size => {
                        Some((connections as f64, e.load().map(|f| f.msgs_per_s)))
                    }
                    _ => None,
                })
                .collect();
            (server.clone(), points)
        })
        .collect();
    let title =
        format!("Messages per second against connections (S = {}, closed loop)", bytes(size));
    Some(line_chart_log_x(&title, "connections (log scale)", "messages/s", &series))
}

/// RSS per idle connection in KiB: a group of bars per server, one bar per N.
pub fn idle_memory(entries: &[Entry], servers: &[String]) -> Option<String> {
    let mut ns: Vec<usize> = entries
        .iter()
        .filter_map(|e| match e.point {
            Point::Idle { connections } => Some(connections),
            Point::Load { .. } => None,
        })
        .collect();
    ns.sort_unstable();
    ns.dedup();
    if ns.is_empty() {
        return None;
    }
    let value = |server: &String, n: usize| {
        entries
            .iter()
            .find(|e| &e.server == server && e.point == Point::Idle { connections: n })
            .and_then(Entry::idle)
            .map(|f| f.rss_per_conn_bytes / 1024.0)
    };
    let groups: Vec<(String, Vec<Option<f64>>)> =
        servers.iter().map(|s| (s.clone(), ns.iter().map(|&n| value(s, n)).collect())).collect();
    let bars: Vec<String> = ns.iter().map(|n| format!("N = {n}")).collect();
    Some(bar_chart("Memory per idle connection (server RSS growth / N)", "KiB", &groups, &bars))
}

/// Lines over a log x axis; `None` values break a line.
fn line_chart_log_x(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x)).collect();
    let ys = series.iter().flat_map(|(_, p)| p.iter().filter_map(|&(_, y)| y));
    let (y_top, y_step) = nice_scale(ys.fold(0.0, f64::max));
    let (lo, hi) = xs.iter().fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    let (lo, hi) = (lo.max(1e-9).log10(), hi.max(1e-9).log10());
    let (lo, hi) = if hi - lo < 1e-9 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    // 20 px inside each end, so the first and last points do not sit on the frame.
    let px = |x: f64| LEFT + 20.0 + (x.log10() - lo) / (hi - lo) * (RIGHT - LEFT - 40.0);
    let py = |y: f64| BOTTOM - y / y_top * (BOTTOM - TOP);

    let mut svg = open(title);
    y_axis(&mut svg, y_label, y_top, y_step, &round_si);
    let mut ticks: Vec<f64> = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{BOTTOM}" x2="{0:.1}" y2="{1}" stroke="#ccc"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            px(x),
            BOTTOM + 5.0,
            BOTTOM + 20.0,
            si(x)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0,
        escape(x_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for run in points.split(|(_, y)| y.is_none()) {
            let coords: Vec<String> = run
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y.unwrap_or(0.0))))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                coords.join(" ")
            );
            for &(x, y) in run {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                    px(x),
                    py(y.unwrap_or(0.0))
                );
            }
        }
        legend(&mut svg, i, name, color);
    }
    svg + "</svg>\n"
}

/// Groups of bars, one group per name, one bar per entry of `bars`; `None` draws no bar.
fn bar_chart(
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<Option<f64>>)],
    bars: &[String],
) -> String {
    let max = groups.iter().flat_map(|(_, v)| v.iter().flatten()).fold(0.0, |m: f64, &v| m.max(v));
    let (y_top, y_step) = nice_scale(max);
    let py = |y: f64| BOTTOM - y.max(0.0) / y_top * (BOTTOM - TOP);
    let group_width = (RIGHT - LEFT) / groups.len().max(1) as f64;
    let bar_width = group_width * 0.8 / bars.len().max(1) as f64;

    let mut svg = open(title);
    y_axis(&mut svg, y_label, y_top, y_step, &|v| {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    });
    for (g, (name, values)) in groups.iter().enumerate() {
        let x0 = LEFT + g as f64 * group_width + group_width * 0.1;
        for (b, value) in values.iter().enumerate() {
            let x = x0 + b as f64 * bar_width;
            let Some(v) = value else { continue };
            let color = COLORS[b % COLORS.len()];
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{v:.1}</text>"#,
                py(*v),
                bar_width - 2.0,
                BOTTOM - py(*v),
                x + bar_width / 2.0,
                py(*v) - 4.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            LEFT + (g as f64 + 0.5) * group_width,
            BOTTOM + 20.0,
            escape(name)
        );
    }
    for (b, name) in bars.iter().enumerate() {
        legend(&mut svg, b, name, COLORS[b % COLORS.len()]);
    }
    svg + "</svg>\n"
}

/// The SVG header, a white background and the title.
fn open(title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="28" font-size="15" font-weight="bold">{}</text>
"#,
        escape(title)
    )
}

/// Horizontal grid lines with their labels, the frame, and the axis title.
fn y_axis(svg: &mut String, label: &str, top: f64, step: f64, fmt: &dyn Fn(f64) -> String) {
    let lines = (top / step).round() as usize;
    for k in 0..=lines {
        let v = k as f64 * step;
        let y = BOTTOM - v / top * (BOTTOM - TOP);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            fmt(v)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#444"/><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"##,
        RIGHT - LEFT,
        BOTTOM - TOP,
        (TOP + BOTTOM) / 2.0,
        escape(label)
    );
}

/// Entry `i` of the legend, right of the plot.
fn legend(svg: &mut String, i: usize, name: &str, color: &str) {
    let y = TOP + 10.0 + i as f64 * 22.0;
    let _ = writeln!(
        svg,
        r#"<rect x="{}" y="{}" width="14" height="14" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
        RIGHT + 20.0,
        y - 11.0,
        RIGHT + 40.0,
        y,
        escape(name)
    );
}

/// An axis label: 200000 -> "200k", 250 -> "250", 1500000 -> "1.5M".
fn round_si(v: f64) -> String {
    let (scaled, unit) = match v {
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let s = format!("{scaled:.2}");
    format!("{}{unit}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A round top for an axis that reaches `max`, and a step giving 4 to 10 grid lines.
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let magnitude = 10f64.powf((max / 5.0).log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| max / s <= 10.0).unwrap();
    ((max / step).ceil() * step, step)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(95_300.0), (100_000.0, 10_000.0));
        let (top, step) = nice_scale(3.2);
        assert!((top - 3.5).abs() < 1e-9 && (step - 0.5).abs() < 1e-9, "{top} {step}");
        assert_eq!(nice_scale(0.0), (1.0, 0.2));
        assert_eq!(round_si(200_000.0), "200k");
        assert_eq!(round_si(1_500_000.0), "1.5M");
        assert_eq!(round_si(0.0), "0");
    }
}
