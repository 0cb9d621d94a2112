//! End-to-end tests of `http-echo`: each starts the real binary on port 0 and talks HTTP to it
//! with clients nobody here wrote (curl, Python's `http.client`, hyper's own client on mini),
//! then under faults (a client that sends its headers a byte a second, one that resets
//! mid-body, a malformed request), and check that the echo streams. Every step is bounded in
//! time; every server is killed and reaped, even when a test fails.

mod cli;
mod clients;
mod faults;
mod hyper_client;
mod load;
mod streaming;
mod util;
