//! Clients nobody here wrote: curl (keep-alive, a 10 MiB body, a chunked upload) and Python's
//! `http.client`. A test whose client is not installed says so and skips.

use crate::util::{assert_same_bytes, have, random_bytes, run, Server, RUNTIMES};

/// `curl -sS --max-time 20 ARGS...`, asserting it succeeds; returns its stdout.
fn curl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    let done = run("curl", &all, stdin);
    assert!(done.status.success(), "curl {args:?}: {} {}", done.status, done.stderr);
    done.stdout
}

#[test]
fn curl_reuses_one_connection_for_several_requests() {
    if !have("curl") {
        return;
    }
    for runtime in RUNTIMES {
        let server = Server::start(runtime, &[]);
        let url = server.url("/");
        // One curl, three URLs: it keeps the connection alive and says how many it opened.
        let out = curl(&["-w", " %{num_connects}\n", &url, &url, &url], b"");
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "Hello, World! 1\nHello, World! 0\nHello, World! 0\n", "{runtime}");
    }
}

#[test]
fn curl_gets_a_10_mib_body_back_whole_sent_at_once_and_chunked() {
    if !have("curl") {
        return;
    }
    let body = random_bytes(10 << 20, 10);
    let file = std::env::temp_dir().join(format!("http-echo-10mib-{}", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let upload = format!("@{}", file.display());
    for runtime in RUNTIMES {
        let server = Server::start(runtime, &[]);
        let url = server.url("/echo");
        // With a Content-Length.
        let got = curl(&["--data-binary", &upload, &url], b"");
        assert_same_bytes(&format!("{runtime}: 10 MiB"), &got, &body);
        // From stdin, length unknown: curl sends it chunked.
        let got = curl(&["-T", "-", "-X", "POST", &url], &body);
        assert_same_bytes(&format!("{runtime}: 10 MiB chunked"), &got, &body);
    }
    let _ = std::fs::remove_file(&file);
}

/// Python's `http.client`: keep-alive GETs and POSTs on one connection, one of them chunked.
const PYTHON_CLIENT: &str = r#"
import http.client, os, sys
host, port = sys.argv[1].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=20)
for _ in range(2):
    conn.request("GET", "/")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"Hello, World!"), r.status
body = os.urandom(1 << 20)
conn.request("POST", "/echo", body=body)
r = conn.getresponse()
assert (r.status, r.read()) == (200, body), "plain echo"
conn.request("POST", "/echo", body=iter([body[:1000], body[1000:]]), encode_chunked=True)
r = conn.getresponse()
assert r.read() == body, "chunked echo"
assert conn.sock is not None, "the connection was not kept alive"
print("ok")
"#;

#[test]
fn python_http_client_keeps_alive_and_gets_its_bodies_back() {
    if !have("python3") {
        return;
    }
    for runtime in RUNTIMES {
        let server = Server::start(runtime, &[]);
        let addr = server.addr().to_string();
        let done = run("python3", &["-c", PYTHON_CLIENT, &addr], b"");
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(done.status.success() && stdout == "ok\n", "{runtime}: {stdout} {}", done.stderr);
    }
}
