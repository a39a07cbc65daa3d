//! Consul registration and discovery against an in-process fake Consul agent
//! (`wpsmesh_tests::consul`) that speaks the documented HTTP API shapes:
//! `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/:id`,
//! `GET /v1/agent/service/:id` and blocking `GET /v1/health/service/:name` with `X-Consul-Index`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use wpsmesh_discovery::consul::{
    ConsulConfig, ConsulError, Registration, register_until, watch_service,
};
use wpsmesh_tests::consul::{FakeConsul, Recorded, instance};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("wpsmesh_discovery=debug")
        .try_init();
}

fn config(address: String) -> ConsulConfig {
    ConsulConfig {
        address,
        ..ConsulConfig::default()
    }
}

/// Polls `cond` until it holds, failing the test after `limit`.
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nothing listens on (bound, then released).
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn pairs(list: &[(&str, u16)]) -> Vec<(String, u16)> {
    list.iter().map(|(h, p)| ((*h).to_owned(), *p)).collect()
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registers_the_documented_body_and_deregisters_on_shutdown() {
    init_logs();
    let consul = FakeConsul::start().await;
    let config = ConsulConfig {
        token: "s3cr3t".into(),
        tags: vec!["qgis".into(), "wps".into()],
        ..config(consul.address())
    };
    let registration = Registration::spawn(&config, "10.1.2.3", 8001).unwrap();
    assert_eq!(registration.service_id(), Some("wps-node-10.1.2.3-8001"));
    eventually("registration", Duration::from_secs(5), || {
        registration.is_registered()
    })
    .await;

    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{:?}", consul.calls());
    let register = &requests[0];
    assert_eq!(register.method, "PUT");
    assert_eq!(register.path, "/v1/agent/service/register");
    assert_eq!(
        register.headers.get("x-consul-token").map(String::as_str),
        Some("s3cr3t")
    );
    // Exactly the documented fields, nothing else (consulrs leaves unset fields out).
    assert_eq!(
        register.json(),
        json!({
            "ID": "wps-node-10.1.2.3-8001",
            "Name": "wps-node",
            "Address": "10.1.2.3",
            "Port": 8001,
            "Tags": ["qgis", "wps"],
            "Check": {
                "GRPC": "10.1.2.3:8001",
                "GRPCUseTLS": false,
                "Interval": "10s",
                "DeregisterCriticalServiceAfter": "1m",
            },
        })
    );

    registration.deregister().await;
    let calls = consul.calls();
    assert_eq!(
        calls,
        vec![
            ("PUT".into(), "/v1/agent/service/register".into(), 200),
            (
                "PUT".into(),
                "/v1/agent/service/deregister/wps-node-10.1.2.3-8001".into(),
                200
            ),
        ]
    );
    let deregister = consul.requests().pop().unwrap();
    assert_eq!(
        deregister.headers.get("x-consul-token").map(String::as_str),
        Some("s3cr3t")
    );
    assert!(!consul.has_service("wps-node-10.1.2.3-8001"));
}

#[tokio::test]
async fn retries_with_backoff_while_consul_is_away_and_the_node_keeps_serving() {
    init_logs();
    let port = free_port().await;
    let config = config(format!("127.0.0.1:{port}"));

    // The node's own work goes on whatever Consul does: spawn returns at once.
    let started = Instant::now();
    let registration = Registration::spawn(&config, "node-a", 8002).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let ticks = Arc::new(Mutex::new(0u32));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                *ticks.lock().unwrap() += 1;
            }
        })
    };

    // Nothing listens for 500 ms, then the agent answers 500 once, then accepts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!registration.is_registered());
    assert!(*ticks.lock().unwrap() >= 10, "the runtime kept running");
    let consul = FakeConsul::start_on(port).await;
    consul.fail_next(1);
    eventually("registration", Duration::from_secs(10), || {
        registration.is_registered()
    })
    .await;
    ticker.abort();

    let registers: Vec<Recorded> = consul
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/agent/service/register")
        .collect();
    assert_eq!(registers.len(), 2, "{:?}", consul.calls());
    assert_eq!(registers[0].status, 500);
    assert_eq!(registers[1].status, 200);
    assert_eq!(registers[1].json()["ID"], "wps-node-node-a-8002");
    // 200, 400 ms before the agent was up, then 800 ms after its 500.
    let gap = registers[1].at - registers[0].at;
    assert!(gap >= Duration::from_millis(700), "backoff grew: {gap:?}");

    registration.deregister().await;
    assert!(!consul.has_service("wps-node-node-a-8002"));
}

#[tokio::test]
async fn registers_again_when_consul_forgot_the_service() {
    init_logs();
    let consul = FakeConsul::start().await;
    let config = ConsulConfig {
        resync_interval: Duration::from_millis(100),
        ..config(consul.address())
    };
    let registration = Registration::spawn(&config, "10.0.0.9", 8003).unwrap();
    let id = "wps-node-10.0.0.9-8003";
    let read = format!("/v1/agent/service/{id}");
    // A check that finds the service (answered with Consul's object TaggedAddresses) is fine.
    eventually("a successful check", Duration::from_secs(5), || {
        consul
            .calls()
            .iter()
            .any(|(m, p, s)| m == "GET" && *p == read && *s == 200)
    })
    .await;
    assert!(registration.is_registered());
    let registers = || {
        consul
            .calls()
            .iter()
            .filter(|(_, p, _)| p == "/v1/agent/service/register")
            .count()
    };
    assert_eq!(registers(), 1);

    consul.forget_services();
    eventually("a new registration", Duration::from_secs(5), || {
        registers() == 2 && consul.has_service(id)
    })
    .await;
    let calls = consul.calls();
    let missing = calls
        .iter()
        .position(|(m, p, s)| m == "GET" && *p == read && *s == 404)
        .expect("a check found the service missing");
    assert_eq!(calls[missing + 1].1, "/v1/agent/service/register");
    registration.deregister().await;
    assert!(!consul.has_service(id));
}

#[tokio::test]
async fn register_until_deregisters_when_shutdown_resolves() {
    init_logs();
    let consul = FakeConsul::start().await;
    let config = config(consul.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        register_until(&config, "10.0.0.7", 8004, async {
            let _ = stopped.await;
        })
        .await
    });
    eventually("registration", Duration::from_secs(5), || {
        consul.has_service("wps-node-10.0.0.7-8004")
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        consul.calls().last().unwrap().1,
        "/v1/agent/service/deregister/wps-node-10.0.0.7-8004"
    );
    assert!(!consul.has_service("wps-node-10.0.0.7-8004"));
}

#[tokio::test]
async fn without_an_address_nothing_is_contacted() {
    init_logs();
    let consul = FakeConsul::start().await;
    let disabled = ConsulConfig::default();
    assert!(!disabled.is_enabled());

    let registration = Registration::spawn(&disabled, "10.0.0.1", 8001).unwrap();
    assert!(!registration.is_enabled());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!registration.is_registered());
    registration.deregister().await;
    register_until(&disabled, "10.0.0.1", 8001, async {})
        .await
        .unwrap();
    assert!(matches!(
        watch_service(&disabled, "wps-node").err(),
        Some(ConsulError::Disabled)
    ));
    assert!(consul.requests().is_empty());
}

#[tokio::test]
async fn deregistration_does_not_hang_when_consul_is_gone() {
    init_logs();
    let config = config(format!("127.0.0.1:{}", free_port().await));
    let registration = Registration::spawn(&config, "10.0.0.1", 8001).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(7), registration.deregister())
        .await
        .expect("deregister returns");
}

#[test]
fn a_malformed_address_is_a_configuration_error() {
    let config = config("ftp://consul:8500".into());
    assert!(matches!(
        Registration::spawn(&config, "h", 1),
        Err(ConsulError::InvalidAddress { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

async fn next_set(
    stream: &mut (impl futures::Stream<Item = Vec<(String, u16)>> + Unpin),
) -> Vec<(String, u16)> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a new set in time")
        .expect("the stream goes on")
}

#[tokio::test]
async fn watch_follows_passing_instances_with_blocking_queries() {
    init_logs();
    let consul = FakeConsul::start().await;
    let mut critical = instance("c", "10.0.0.3", "10.0.0.3", 8003);
    critical.status = "critical";
    let mut storage = instance("s", "10.0.0.4", "10.0.0.4", 8800);
    storage.service = "wps-file-storage".into();
    consul.set_instances(vec![
        instance("b", "10.0.0.2", "", 8002), // no service address: the node's
        instance("a", "10.0.0.1", "10.0.0.1", 8001),
        critical,
        storage,
    ]);
    let config = ConsulConfig {
        token: "s3cr3t".into(),
        ..config(consul.address())
    };
    let mut stream = watch_service(&config, "wps-node").unwrap();

    assert_eq!(
        next_set(&mut stream).await,
        pairs(&[("10.0.0.1", 8001), ("10.0.0.2", 8002)])
    );
    let first = consul.requests()[0].clone();
    assert_eq!(first.method, "GET");
    assert_eq!(first.path, "/v1/health/service/wps-node");
    assert_eq!(first.query.get("passing").map(String::as_str), Some("true"));
    assert_eq!(first.query.get("index").map(String::as_str), Some("0"));
    assert_eq!(first.query.get("wait").map(String::as_str), Some("5m"));
    assert_eq!(
        first.headers.get("x-consul-token").map(String::as_str),
        Some("s3cr3t")
    );

    // The critical instance turns healthy: the change arrives through the held query.
    consul.update(|list| list.iter_mut().for_each(|i| i.status = "passing"));
    assert_eq!(
        next_set(&mut stream).await,
        pairs(&[("10.0.0.1", 8001), ("10.0.0.2", 8002), ("10.0.0.3", 8003)])
    );
    // Later queries carry the X-Consul-Index of the previous answer (11, then 12).
    let indexes: Vec<String> = consul
        .requests()
        .iter()
        .map(|r| r.query["index"].clone())
        .collect();
    assert_eq!(&indexes[..2], &["0".to_owned(), "11".to_owned()]);

    // An index move without a change yields nothing.
    consul.bump_index();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );

    consul.update(|list| list.retain(|i| i.id != "a"));
    assert_eq!(
        next_set(&mut stream).await,
        pairs(&[("10.0.0.2", 8002), ("10.0.0.3", 8003)])
    );
}

#[tokio::test]
async fn watch_retries_until_consul_answers() {
    init_logs();
    let port = free_port().await;
    let config = config(format!("http://127.0.0.1:{port}"));
    let mut stream = watch_service(&config, "wps-node").unwrap();
    let first = tokio::spawn(async move {
        let set = next_set_within(&mut stream, Duration::from_secs(10)).await;
        (set, stream)
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let consul = FakeConsul::start_on(port).await;
    consul.fail_next(1);
    consul.set_instances(vec![instance("a", "10.0.0.1", "10.0.0.1", 8001)]);
    let (set, mut stream) = first.await.unwrap();
    assert_eq!(set, pairs(&[("10.0.0.1", 8001)]));
    let statuses: Vec<u16> = consul.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 200]);

    consul.update(|list| list.push(instance("b", "10.0.0.2", "10.0.0.2", 8002)));
    assert_eq!(
        next_set(&mut stream).await,
        pairs(&[("10.0.0.1", 8001), ("10.0.0.2", 8002)])
    );
}

async fn next_set_within(
    stream: &mut (impl futures::Stream<Item = Vec<(String, u16)>> + Unpin),
    limit: Duration,
) -> Vec<(String, u16)> {
    tokio::time::timeout(limit, stream.next())
        .await
        .expect("a set in time")
        .expect("the stream goes on")
}
