//! Tests against the real nats-server binary; skipped when it is not installed.

use std::net::TcpStream;

use super::probe::{http_get_status, tcp_accepts};
use super::*;

/// True (after telling why) when the binary is missing and the test should end.
fn skip_without_binary() -> bool {
    match nats_server_binary() {
        Ok(_) => false,
        Err(err) => {
            eprintln!("skipping: {err}");
            true
        }
    }
}

#[test]
fn server_survives_kill_and_restart_on_same_store() {
    if skip_without_binary() {
        return;
    }
    let mut server = NatsServer::start().expect("start");
    let port = server.port();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(server.store_dir().join("jetstream").is_dir());
    let store = server.store_dir().to_path_buf();
    let first_pid = server.pid().expect("running");

    server.kill();
    assert_eq!(server.pid(), None);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts after kill"
    );

    server.restart().expect("restart");
    assert_eq!(server.port(), port);
    assert_eq!(server.store_dir(), store);
    assert_ne!(server.pid(), Some(first_pid));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    let log = std::fs::read_to_string(server.log_path()).expect("log");
    assert_eq!(log.matches("Server is ready").count(), 2, "{log}");
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    if skip_without_binary() {
        return;
    }
    let server = NatsServer::start().expect("start");
    let port = server.port();
    let log = server.log_path().to_path_buf();
    drop(server);
    assert!(!tcp_accepts(port));
    assert!(!log.exists());
}

#[test]
fn options_fix_port_and_store_and_sync() {
    if skip_without_binary() {
        return;
    }
    let store = tempfile::tempdir().expect("store");
    let port = super::ports::free_ports(1).expect("port")[0];
    let server = NatsServer::start_with(ServerOptions {
        port: Some(port),
        store_dir: Some(store.path().to_path_buf()),
        sync_always: true,
        ..ServerOptions::default()
    })
    .expect("start");
    assert_eq!(server.port(), port);
    assert_eq!(server.store_dir(), store.path());
    assert!(store.path().join("jetstream").is_dir());
    drop(server);
    // A caller-owned store outlives the server.
    assert!(store.path().join("jetstream").is_dir());
}

#[test]
fn fixed_port_in_use_fails_with_log_tail() {
    if skip_without_binary() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let err = NatsServer::start_with(ServerOptions {
        port: Some(port),
        ..ServerOptions::default()
    })
    .expect_err("port is taken");
    let text = format!("{err:#}");
    assert!(text.contains("exited during startup"), "{text}");
    assert!(text.contains("address already in use"), "{text}");
}

#[test]
fn three_node_cluster_is_healthy_and_recovers_a_node() {
    if skip_without_binary() {
        return;
    }
    let mut cluster = NatsCluster::start(3).expect("cluster");
    assert_eq!(cluster.len(), 3);
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    for (i, url) in urls.iter().enumerate() {
        let node = cluster.server(i);
        assert_eq!(*url, node.url());
        assert_eq!(
            http_get_status(node.monitor_port(), "/healthz").expect("GET"),
            200
        );
        let log = std::fs::read_to_string(node.log_path()).expect("log");
        assert!(log.contains(&format!("Name:     n{}", i + 1)), "{log}");
    }

    cluster.kill(1);
    assert!(!tcp_accepts(cluster.server(1).port()));
    cluster.restart(1).expect("restart n2");
    for i in 0..3 {
        let port = cluster.server(i).monitor_port();
        assert_eq!(http_get_status(port, "/healthz").expect("GET"), 200);
    }
}
