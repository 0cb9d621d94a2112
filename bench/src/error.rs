//! Why one run of a point failed. The bench reports it (progress line, table, the JSON's
//! `errors`) and goes on with the other points; whether a server died is a variant, not a phrase
//! to look for in a message.

use std::fmt;

use super::server::Server;

/// Why one run of one point failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// A server process ended, or never got as far as `listening on`; the message names the
    /// server and says how ("the NAME server died (exit status 1); its stderr ends: ...").
    Server(String),
    /// The run went wrong while its servers lived: a connection broke, a reply was wrong, a
    /// reading of `/proc` failed. `server` names the server when a run had several.
    Run { server: Option<String>, what: String },
}

impl RunError {
    /// The error, attributed to `server` unless it names a server already.
    pub fn in_server(self, server: &Server) -> RunError {
        match self {
            RunError::Run { server: None, what } => {
                RunError::Run { server: Some(server.name().to_owned()), what }
            }
            named => named,
        }
    }

    /// The error, or how one of `servers` died if one has: a broken connection is often the
    /// first sign of a dead server.
    pub fn or_dead(self, servers: &mut [Server]) -> RunError {
        if let RunError::Server(_) = self {
            return self;
        }
        match servers.iter_mut().find_map(|s| s.check_after_error().err()) {
            Some(dead) => RunError::Server(format!("{dead} ({self})")),
            None => self,
        }
    }
}

impl From<String> for RunError {
    fn from(what: String) -> RunError {
        RunError::Run { server: None, what }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Server(how) => f.write_str(how),
            RunError::Run { server: Some(server), what } => write!(f, "{server}: {what}"),
            RunError::Run { server: None, what } => f.write_str(what),
        }
    }
}
