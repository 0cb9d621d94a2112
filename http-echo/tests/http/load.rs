//! A thousand keep-alive connections open at once, each served in turn, on one thread.

use hyper::{Method, StatusCode};

use crate::hyper_client::{block_on, Client};
use crate::util::{random_bytes, Server, RUNTIMES};

const CONNECTIONS: usize = 1000;

#[test]
fn a_thousand_concurrent_keep_alive_connections_are_all_served() {
    for runtime in RUNTIMES {
        let mut server = Server::start(runtime, &[]);
        let addr = server.addr();
        block_on(async {
            // 1. Open them all (hyper's client, on mini), so all are open at once.
            let connecting: Vec<_> =
                (0..CONNECTIONS).map(|_| mini::spawn(Client::connect(addr))).collect();
            let mut clients = Vec::with_capacity(CONNECTIONS);
            for task in connecting {
                clients.push(task.await.expect("connect task"));
            }
            // 2. Two rounds of requests on every connection at once; each connection carries
            //    all of its own (keep-alive), and each echo carries the connection's number.
            for round in 0..2u64 {
                let requests: Vec<_> = clients
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut client)| {
                        mini::spawn(async move {
                            let (status, hello) = client.get("/").await;
                            assert_eq!(
                                (status, hello.as_slice()),
                                (StatusCode::OK, &b"Hello, World!"[..])
                            );
                            let sent = random_bytes(1000, i as u64 * 2 + round);
                            let (_, got) = client.send(Method::POST, "/echo", sent.clone()).await;
                            assert!(got == sent, "connection {i}, round {round}: wrong echo");
                            client
                        })
                    })
                    .collect();
                clients = Vec::with_capacity(CONNECTIONS);
                for task in requests {
                    clients.push(task.await.unwrap_or_else(|e| panic!("{runtime}: {e}")));
                }
            }
        });
        server.assert_running();
    }
}
