//! The documentation's quotations and figures stay true to their sources.
//!
//! **Quotations.** A passage in double quotes of three words or more, in a sentence that links
//! to a source file (any file that is not Markdown or an image), is taken as quoted from that
//! file, and must appear in it (or in one of them, if the sentence links to several).
//! Whitespace, backticks and comment markers (`//!`, `///`, `//`) are ignored, so a quotation
//! may span the lines of a doc comment; `...` or `…` inside a quotation is an elision.
//!
//! **Figures from a committed run.** A figure quoted from `echo bench`'s JSON lines carries an
//! HTML comment, invisible on the rendered page, naming the line and the field it comes from:
//!
//! ```text
//! grew by 650<!-- run: bench/results.jsonl idle mini connections=10000 rss_per_conn_bytes --> bytes
//! ```
//!
//! The words after the file are the line's `kind`, then its `server`, then `key=value` filters;
//! the last word is the field, optionally scaled (`server_busy*100` for a percentage). The
//! figure is the last number before the comment on its line (`16 662`, `0.984`, `210.2k`); it
//! must equal the field rounded to the digits the text gives. A table takes one comment on the
//! line before it, mapping columns to fields for the server named in its first column:
//!
//! ```text
//! <!-- run columns: 2=bench/results.jsonl idle connections=10000 server_busy*100; 3=... -->
//! ```
//!
//! A cell checked this way holds the figure, or says `not measured` when the run has no line
//! (or no such figure) for that server; a cell with no digit (`reference`) is not checked. The path is relative to the Markdown file, as a link is.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::{links, local_path, markdown_files, relative, resolve};

#[test]
fn quotations_from_source_files_are_in_them() {
    let mut problems = Vec::new();
    for file in &markdown_files() {
        let text = fs::read_to_string(file).expect("read a Markdown file");
        problems.extend(check_quotations(file, &text));
    }
    assert!(
        problems.is_empty(),
        "quotations not found in their sources:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn figures_from_committed_runs_match_them() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &markdown_files() {
        let text = fs::read_to_string(file).expect("read a Markdown file");
        let (n, found) = check_figures(file, &text);
        checked += n;
        problems.extend(found);
    }
    assert!(checked >= 10, "only {checked} figures are tied to a committed run");
    assert!(
        problems.is_empty(),
        "figures that do not match their run:\n  {}",
        problems.join("\n  ")
    );
}

/// Planted mistakes are caught: a quotation its file does not hold, and a stale figure.
#[test]
fn planted_mistakes_are_caught() {
    let docs = crate::repo_root().join("docs/io-models.md");
    let quote = "Per [`epoll/mod.rs`](../echo/src/epoll/mod.rs): \"That is the code mini writes.\"";
    assert_eq!(check_quotations(&docs, quote).len(), 1, "a wrong quotation passed");
    let exact = "[`mini.rs`](../echo/src/mini.rs) says \"one task per connection on one thread\".";
    assert!(check_quotations(&docs, exact).is_empty(), "a true quotation failed");

    let at =
        "mini: 787<!-- run: bench/results.jsonl idle mini connections=10000 rss_per_conn_bytes -->";
    assert_eq!(
        check_figures(&docs, at),
        (1, vec![format!("docs/io-models.md:1: 787 is 650.035 in the run")])
    );
    let fresh = at.replace("787", "650");
    assert_eq!(check_figures(&docs, &fresh), (1, Vec::new()));
}

// ---- quotations ----

fn check_quotations(file: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (line_no, sentence) in sentences(text) {
        let sources: Vec<_> = links(&sentence)
            .into_iter()
            .filter_map(|(_, target)| local_path(&target).map(|p| resolve(file, p)))
            .filter(|path| path.is_file() && !is_page_or_image(path))
            .collect();
        if sources.is_empty() {
            continue;
        }
        for quote in quotations(&sentence) {
            let found = sources.iter().any(|source| {
                fs::read_to_string(source)
                    .is_ok_and(|code| contains_quote(&normalize(&code), &quote))
            });
            if !found {
                let names: Vec<_> = sources
                    .iter()
                    .map(|s| relative(&fs::canonicalize(s).unwrap_or(s.clone())))
                    .collect();
                problems.push(format!(
                    "{}:{line_no}: \"{quote}\" is not in {}",
                    relative(file),
                    names.join(" or ")
                ));
            }
        }
    }
    problems
}

fn is_page_or_image(path: &Path) -> bool {
    path.extension().is_some_and(|e| ["md", "svg", "png", "jsonl"].iter().any(|x| e == *x))
}

/// The sentences of the page outside fenced code, each with the line it starts on. A list item,
/// a table row and a blank line end a sentence, as does `.`, `?` or `!` before a space outside
/// quotes and code.
fn sentences(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut in_fence = false;
    let mut flush = |current: &mut String, start: usize| {
        if !current.trim().is_empty() {
            out.push((start, std::mem::take(current)));
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            flush(&mut current, start);
            continue;
        }
        let new_block = trimmed.is_empty()
            || trimmed.starts_with('|')
            || trimmed.starts_with("- ")
            || trimmed.starts_with('#')
            || trimmed
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if in_fence || new_block {
            flush(&mut current, start);
        }
        if in_fence || trimmed.is_empty() {
            continue;
        }
        let (mut in_code, mut in_quote) = (false, false);
        let chars: Vec<char> = line.chars().collect();
        for (j, &c) in chars.iter().enumerate() {
            if current.is_empty() {
                start = i + 1;
            }
            current.push(c);
            match c {
                '`' => in_code = !in_code,
                '"' if !in_code => in_quote = !in_quote,
                '.' | '?' | '!' if !in_code && !in_quote && chars.get(j + 1) == Some(&' ') => {
                    flush(&mut current, start)
                }
                _ => {}
            }
        }
        if trimmed.starts_with('|') {
            flush(&mut current, start);
        } else {
            current.push(' ');
        }
    }
    flush(&mut current, start);
    out
}

/// The passages in straight or curly double quotes, outside code spans, of three words or more.
fn quotations(sentence: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    let mut quote: Option<String> = None;
    for c in sentence.chars() {
        match (c, quote.as_mut()) {
            ('`', q) => {
                in_code = !in_code;
                if let Some(q) = q {
                    q.push(c);
                }
            }
            ('"' | '“', None) if !in_code => quote = Some(String::new()),
            ('"' | '”', Some(_)) if !in_code => found.push(quote.take().expect("in a quote")),
            (_, Some(q)) => q.push(c),
            (_, None) => {}
        }
    }
    found.into_iter().filter(|q| q.split_whitespace().count() >= 3).map(|q| normalize(&q)).collect()
}

/// Text with comment markers, backticks and runs of whitespace reduced, for comparing prose.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = ["//!", "///", "//"].iter().find_map(|m| line.strip_prefix(m)).unwrap_or(line);
        for word in line.split_whitespace() {
            out.push_str(&word.replace('`', ""));
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

/// Whether `text` holds `quote`, whose `...`/`…` parts must appear in order.
fn contains_quote(text: &str, quote: &str) -> bool {
    let mut rest = text;
    for part in quote.replace('…', "...").split("...").map(str::trim).filter(|p| !p.is_empty()) {
        let part = part.trim_end_matches(['.', ',', ';', ':']);
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

// ---- figures ----

/// The figures of a page tied to a run: how many, and those that do not match.
fn check_figures(file: &Path, text: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut problems = Vec::new();
    // The column specs of the table being read, and how many of its rows have been seen.
    let mut table: Option<(Vec<(usize, String)>, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", relative(file), i + 1);
        if let Some(spec) = comment(line, "run columns:") {
            let columns = spec
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .filter_map(|(n, spec)| Some((n.trim().parse().ok()?, spec.trim().to_owned())))
                .collect();
            table = Some((columns, 0));
            continue;
        }
        if let Some((columns, rows)) = table.as_mut() {
            if !line.trim_start().starts_with('|') {
                table = None;
            } else {
                *rows += 1;
                // Row 1 is the header, row 2 the `| --- |` line under it.
                if *rows > 2 {
                    let cells: Vec<&str> =
                        line.trim().trim_matches('|').split('|').map(str::trim).collect();
                    let server = cells[0].trim_matches(['`', '*']);
                    for (n, spec) in columns.iter() {
                        let cell = cells.get(n - 1).copied().unwrap_or("");
                        let spec = with_server(spec, server);
                        if !cell.contains("not measured")
                            && !cell.contains(|c: char| c.is_ascii_digit())
                        {
                            continue; // a word such as "reference"
                        }
                        checked += 1;
                        let result = if cell.contains("not measured") {
                            match lookup(file, &spec) {
                                Ok(v) => Err(format!("says not measured, the run has {v}")),
                                Err(_) => Ok(()),
                            }
                        } else {
                            check_figure(file, &spec, &first_number(cell).unwrap_or_default())
                        };
                        if let Err(e) = result {
                            problems.push(format!("{at}: `{server}`, column {n}: {e}"));
                        }
                    }
                }
            }
        }
        let mut rest = line;
        while let Some(start) = rest.find("<!-- run:") {
            let end = rest[start..].find("-->").map_or(rest.len(), |e| start + e);
            let spec = &rest[start + "<!-- run:".len()..end];
            let before = &line[..line.len() - rest.len() + start];
            checked += 1;
            if let Err(e) =
                check_figure(file, spec.trim(), &last_number(before).unwrap_or_default())
            {
                problems.push(format!("{at}: {e}"));
            }
            rest = &rest[end..];
        }
    }
    (checked, problems)
}

/// The spec of a column, `FILE KIND FILTERS FIELD`, with the row's server put after the kind.
fn with_server(spec: &str, server: &str) -> String {
    let mut words: Vec<&str> = spec.split_whitespace().collect();
    words.insert(2.min(words.len()), server);
    words.join(" ")
}

/// The text of an HTML comment on `line` that starts with `tag`.
fn comment<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let inner = line.trim().strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    inner.strip_prefix(tag)
}

fn check_figure(file: &Path, spec: &str, quoted: &str) -> Result<(), String> {
    let actual = lookup(file, spec)?;
    let (value, unit) = parse_figure(quoted).ok_or_else(|| format!("no figure before `{spec}`"))?;
    if (value - actual).abs() <= unit / 2.0 + 1e-9 {
        Ok(())
    } else {
        Err(format!("{quoted} is {actual} in the run"))
    }
}

/// The field a spec names, from the one JSON line it selects.
fn lookup(file: &Path, spec: &str) -> Result<f64, String> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let [path, kind, server, filters @ .., field] = words.as_slice() else {
        return Err(format!("`{spec}`: want FILE KIND SERVER [KEY=VALUE ...] FIELD"));
    };
    let run = fs::read_to_string(resolve(file, path)).map_err(|e| format!("read {path}: {e}"))?;
    let (field, scale) = match field.split_once('*') {
        Some((f, s)) => (f, s.parse::<f64>().map_err(|_| format!("bad scale in `{spec}`"))?),
        None => (*field, 1.0),
    };
    let matches: Vec<Value> = run
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == *kind && v["server"] == *server)
        .filter(|v| {
            filters.iter().all(|f| {
                f.split_once('=')
                    .is_some_and(|(k, want)| v[k].to_string().trim_matches('"') == want)
            })
        })
        .collect();
    match matches.as_slice() {
        [one] => one[field]
            .as_f64()
            .map(|v| v * scale)
            .ok_or_else(|| format!("`{spec}`: no number {field}")),
        [] => Err(format!("`{spec}`: no such line in {path}")),
        _ => Err(format!("`{spec}`: {} lines match in {path}", matches.len())),
    }
}

/// The last number of `text`: digits with single spaces, commas or a point between them, and
/// maybe a `k` after (`16 662`, `0.984`, `210.2k`).
fn last_number(text: &str) -> Option<String> {
    numbers(text).pop()
}

/// The first number of `text`, as [`last_number`] reads one.
fn first_number(text: &str) -> Option<String> {
    numbers(text).into_iter().next()
}

fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut number = String::new();
        while i < chars.len() {
            let c = chars[i];
            let joins =
                matches!(c, ' ' | ',' | '.') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() || joins {
                number.push(c);
                i += 1;
            } else {
                if c == 'k' && !chars.get(i + 1).is_some_and(|c| c.is_alphanumeric()) {
                    number.push(c);
                    i += 1;
                }
                break;
            }
        }
        found.push(number);
    }
    found
}

/// A quoted figure's value and the unit of its last digit: `16 662` is (16662, 1), `0.984` is
/// (0.984, 0.001), `210.2k` is (210200, 100).
fn parse_figure(text: &str) -> Option<(f64, f64)> {
    let digits: String =
        text.chars().filter(|c| c.is_ascii_digit() || *c == '.' || *c == 'k').collect();
    let (digits, scale) = match digits.strip_suffix('k') {
        Some(d) => (d, 1000.0),
        None => (digits.as_str(), 1.0),
    };
    let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len());
    let value: f64 = digits.parse().ok()?;
    Some((value * scale, scale / 10f64.powi(decimals as i32)))
}
