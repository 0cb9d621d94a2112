//! The documentation stays true to the repository: every relative link in the Markdown files
//! (`*.md` at the root and in `docs/`) names a file or directory that exists, and every Rust
//! snippet in `docs/` that says which file it was copied from still matches that file.
//!
//! A link is `[text](target)` or a reference definition `[label]: target`. Targets that start
//! with `http:`, `https:`, `mailto:` or `#` are not checked; a `#fragment` is stripped and the
//! rest resolved against the Markdown file's directory (or the repository root, for a target
//! that starts with `/`, as GitHub does). Fenced code blocks and inline code are skipped.
//!
//! A link to a heading of a Markdown page (`page.md#some-heading`, or `#some-heading` within
//! the page) must name a heading the page has, with the anchor GitHub makes for it.
//!
//! A Rust snippet (a fence whose info string starts with `rust`) in `docs/` must name its source
//! on the line before the fence, with a link to a `.rs` file ("from
//! [`runtime/examples/timer.rs`](../runtime/examples/timer.rs)"), and each of its lines must
//! still be a line of that file (compared with surrounding spaces trimmed; a line `// ...`
//! marks an elision). So a snippet is either compiled where it came from or the test says that
//! it went stale. The README's Rust block is compiled as a doctest of `mini` instead.
//!
//! [`facts`] checks the prose: quotations from source files, and figures from committed runs.

mod facts;

use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn relative_links_in_markdown_resolve() {
    let mut broken = Vec::new();
    let files = markdown_files();
    assert!(files.len() >= 2, "found no Markdown files under {}", repo_root().display());
    for file in &files {
        let text = fs::read_to_string(file).expect("read a Markdown file");
        for (line_no, target) in links(&text) {
            if let Some(path) = local_path(&target) {
                let resolved = resolve(file, path);
                if !resolved.exists() {
                    broken.push(format!("{}:{line_no}: ({target})", relative(file)));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken relative links:\n  {}", broken.join("\n  "));
}

#[test]
fn anchors_in_markdown_links_exist() {
    let mut broken = Vec::new();
    for file in &markdown_files() {
        let text = fs::read_to_string(file).expect("read a Markdown file");
        for (line_no, target) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let Some((path, fragment)) = target.split_once('#') else { continue };
            let page = if path.is_empty() { file.clone() } else { resolve(file, path) };
            if page.extension().is_none_or(|e| e != "md") {
                continue; // a fragment of a source file names a line, not a heading
            }
            // A missing page is reported by `relative_links_in_markdown_resolve`.
            let Ok(page_text) = fs::read_to_string(&page) else { continue };
            if !anchors(&page_text).iter().any(|a| a == fragment) {
                broken.push(format!("{}:{line_no}: ({target})", relative(file)));
            }
        }
    }
    assert!(broken.is_empty(), "links to headings that do not exist:\n  {}", broken.join("\n  "));
}

#[test]
fn rust_snippets_in_docs_match_their_sources() {
    let mut problems = Vec::new();
    let docs = repo_root().join("docs");
    for file in markdown_files().iter().filter(|f| f.parent() == Some(docs.as_path())) {
        let text = fs::read_to_string(file).expect("read a Markdown file");
        for snippet in rust_snippets(&text) {
            let at = format!("{}:{}", relative(file), snippet.line_no);
            let Some(source) = snippet.source.as_deref() else {
                problems.push(format!(
                    "{at}: a Rust snippet must say, on the line before its fence, which file \
                     it is copied from, with a link to that .rs file"
                ));
                continue;
            };
            let path = resolve(file, source);
            let Ok(code) = fs::read_to_string(&path) else {
                problems.push(format!("{at}: cannot read its source {source}"));
                continue;
            };
            let lines: Vec<&str> = code.lines().map(str::trim).collect();
            for line in snippet.lines.iter().map(|l| l.trim()) {
                if !line.is_empty() && line != "// ..." && !lines.contains(&line) {
                    problems.push(format!("{at}: no longer in {source}: {line}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "stale Rust snippets in docs/:\n  {}", problems.join("\n  "));
}

/// The repository root: the parent of `docs/`, whose test this is.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("docs/ has a parent").to_path_buf()
}

/// `*.md` at the root and in `docs/`, sorted.
pub(crate) fn markdown_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("docs")] {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
            if path.is_file() && path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every link target outside code, with its 1-based line number.
pub(crate) fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let line = without_inline_code(line);
        // Reference definitions: `[label]: target`.
        if let Some(rest) = line.trim_start().strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]:") {
                if let Some(target) = target.split_whitespace().next() {
                    found.push((i + 1, target.trim_matches(['<', '>']).to_owned()));
                }
                continue;
            }
        }
        // Inline links and images: `](target)` or `](target "title")`.
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let inside = rest[..end].trim();
            let target = inside.split_whitespace().next().unwrap_or("");
            found.push((i + 1, target.trim_matches(['<', '>']).to_owned()));
            rest = &rest[end..];
        }
    }
    found
}

/// The line with every `code span` removed (so that a `](x)` inside code is not a link).
fn without_inline_code(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The path part of a link target, or `None` for a target that is not a file in the repository.
pub(crate) fn local_path(target: &str) -> Option<&str> {
    let skip = ["http://", "https://", "mailto:", "#"];
    if target.is_empty() || skip.iter().any(|s| target.starts_with(s)) {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or("");
    (!path.is_empty()).then_some(path)
}

/// `path` as seen from Markdown file `file`.
pub(crate) fn resolve(file: &Path, path: &str) -> PathBuf {
    match path.strip_prefix('/') {
        Some(from_root) => repo_root().join(from_root),
        None => file.parent().expect("a file has a directory").join(path),
    }
}

/// `path` relative to the repository root, for messages.
pub(crate) fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

/// The anchors GitHub gives the headings of a Markdown page: the heading's text in lower case,
/// without punctuation, spaces turned into `-`, and `-1`, `-2`, ... after repeats.
fn anchors(text: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if in_fence || !(1..=6).contains(&hashes) || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
        let base: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let repeats = anchors
            .iter()
            .filter(|a| **a == base || a.strip_prefix(&format!("{base}-")).is_some_and(is_number))
            .count();
        anchors.push(if repeats == 0 { base } else { format!("{base}-{repeats}") });
    }
    anchors
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// A fenced Rust block: where it starts, the file it says it came from, and its lines.
struct Snippet<'a> {
    line_no: usize,
    source: Option<String>,
    lines: Vec<&'a str>,
}

fn rust_snippets(text: &str) -> Vec<Snippet<'_>> {
    let mut snippets = Vec::new();
    let mut previous = "";
    let mut current: Option<Snippet<'_>> = None;
    let mut in_other_fence = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence = trimmed.starts_with("```");
        if let Some(snippet) = current.as_mut() {
            if fence {
                snippets.push(current.take().expect("inside a snippet"));
            } else {
                snippet.lines.push(line);
            }
        } else if in_other_fence {
            in_other_fence = !fence;
        } else if fence && trimmed[3..].trim_start().starts_with("rust") {
            let source = links(previous)
                .into_iter()
                .map(|(_, target)| target)
                .find(|target| local_path(target).is_some_and(|p| p.ends_with(".rs")));
            current = Some(Snippet { line_no: i + 1, source, lines: Vec::new() });
        } else if fence {
            in_other_fence = true;
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    snippets
}
