//! Consul registration and discovery against an in-process fake Consul agent that speaks the
//! documented HTTP API shapes: `PUT /v1/agent/service/register`,
//! `PUT /v1/agent/service/deregister/:id`, `GET /v1/agent/service/:id` and blocking
//! `GET /v1/health/service/:name` with `X-Consul-Index`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wpsmesh_runtime::consul::{
    ConsulConfig, ConsulError, Registration, register_until, watch_service,
};

// ---------------------------------------------------------------------------------------------
// The fake agent
// ---------------------------------------------------------------------------------------------

/// One request the fake received, and the status it answered.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
    at: Instant,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// An instance in the fake catalog, as `/v1/health/service/:name` reports it.
#[derive(Debug, Clone)]
struct Instance {
    id: String,
    service: String,
    node: String,
    node_address: String,
    address: String,
    port: u16,
    status: &'static str,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Services registered on this agent, by id: the register bodies.
    services: BTreeMap<String, Value>,
    /// Answer 500 to this many requests before behaving.
    fail_next: usize,
    instances: Vec<Instance>,
}

#[derive(Clone)]
struct FakeConsul {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// The Raft-like index of the health data; bumped on every catalog change.
    index: Arc<watch::Sender<u64>>,
}

impl FakeConsul {
    async fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    async fn start_on(port: u16) -> Self {
        Self::serve(TcpListener::bind(("127.0.0.1", port)).await.unwrap())
    }

    fn serve(listener: TcpListener) -> Self {
        let fake = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            index: Arc::new(watch::channel(10).0),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server.clone().connection(socket));
            }
        });
        fake
    }

    fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn calls(&self) -> Vec<(String, String, u16)> {
        self.requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect()
    }

    fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// What a dev-mode agent does when it restarts: forget every service.
    fn forget_services(&self) {
        self.state.lock().unwrap().services.clear();
    }

    fn has_service(&self, id: &str) -> bool {
        self.state.lock().unwrap().services.contains_key(id)
    }

    fn set_instances(&self, instances: Vec<Instance>) {
        self.state.lock().unwrap().instances = instances;
        self.index.send_modify(|i| *i += 1);
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Instance>)) {
        f(&mut self.state.lock().unwrap().instances);
        self.index.send_modify(|i| *i += 1);
    }

    /// A write elsewhere in the cluster: the index moves, the service's instances do not.
    fn bump_index(&self) {
        self.index.send_modify(|i| *i += 1);
    }

    async fn connection(self, mut socket: TcpStream) {
        let Some(mut request) = read_request(&mut socket).await else {
            return;
        };
        let (status, headers, body) = self.answer(&request).await;
        request.status = status;
        self.state.lock().unwrap().requests.push(request);
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            if status < 300 { "OK" } else { "Error" },
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(&body).await;
        let _ = socket.shutdown().await;
    }

    async fn answer(&self, r: &Recorded) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        let text = |s: &str| s.as_bytes().to_vec();
        {
            let mut state = self.state.lock().unwrap();
            if state.fail_next > 0 {
                state.fail_next -= 1;
                return (500, vec![], text("No cluster leader"));
            }
        }
        let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        match (r.method.as_str(), segments.as_slice()) {
            ("PUT", ["v1", "agent", "service", "register"]) => {
                let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
                    return (400, vec![], text("Request decode failed"));
                };
                let Some(name) = body["Name"].as_str().filter(|n| !n.is_empty()) else {
                    return (400, vec![], text("Missing service name"));
                };
                let id = body["ID"].as_str().unwrap_or(name).to_owned();
                self.state.lock().unwrap().services.insert(id, body);
                (200, vec![], vec![])
            }
            ("PUT", ["v1", "agent", "service", "deregister", id]) => {
                match self.state.lock().unwrap().services.remove(*id) {
                    Some(_) => (200, vec![], vec![]),
                    None => (404, vec![], text(&format!("Unknown service ID {id:?}"))),
                }
            }
            ("GET", ["v1", "agent", "service", id]) => {
                let state = self.state.lock().unwrap();
                match state.services.get(*id) {
                    Some(def) => (
                        200,
                        json_type(),
                        agent_service(def).to_string().into_bytes(),
                    ),
                    None => (404, vec![], text(&format!("unknown service ID: {id}"))),
                }
            }
            ("GET", ["v1", "health", "service", name]) => self.health(name, r).await,
            _ => (404, vec![], text("not found")),
        }
    }

    /// A blocking query: answers at once when the client's index is behind, else when the
    /// index moves or `wait` runs out.
    async fn health(
        &self,
        name: &str,
        r: &Recorded,
    ) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        let sent: u64 = r
            .query
            .get("index")
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let wait = r
            .query
            .get("wait")
            .and_then(|w| w.strip_suffix('m'))
            .and_then(|m| m.parse::<u64>().ok())
            .map_or(Duration::from_secs(300), |m| Duration::from_secs(m * 60));
        let mut rx = self.index.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|i| *i > sent)).await;
        let index = *self.index.borrow();
        let passing_only = r.query.get("passing").is_some_and(|p| p != "false");
        let entries: Vec<Value> = self
            .state
            .lock()
            .unwrap()
            .instances
            .iter()
            .filter(|i| i.service == name && (!passing_only || i.status == "passing"))
            .map(health_entry)
            .collect();
        let mut headers = json_type();
        headers.push(("X-Consul-Index", index.to_string()));
        (200, headers, Value::Array(entries).to_string().into_bytes())
    }
}

fn json_type() -> Vec<(&'static str, String)> {
    vec![("Content-Type", "application/json".into())]
}

/// `GET /v1/agent/service/:id` as Consul answers it, including the `TaggedAddresses` objects the
/// agent adds for an IP address.
fn agent_service(def: &Value) -> Value {
    let tagged = json!({"Address": def["Address"], "Port": def["Port"]});
    json!({
        "ID": def["ID"], "Service": def["Name"], "Tags": def["Tags"], "Meta": {},
        "Port": def["Port"], "Address": def["Address"],
        "TaggedAddresses": {"lan_ipv4": tagged, "wan_ipv4": tagged},
        "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
        "ContentHash": "4ecd29c7bc647ca8", "Datacenter": "dc1",
    })
}

/// One entry of `/v1/health/service/:name`, in the documented shape.
fn health_entry(i: &Instance) -> Value {
    json!({
        "Node": {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": i.node,
            "Address": i.node_address, "Datacenter": "dc1",
            "TaggedAddresses": {"lan": i.node_address, "wan": i.node_address}, "Meta": {},
        },
        "Service": {
            "ID": i.id, "Service": i.service, "Tags": [], "Address": i.address,
            "Meta": null, "Port": i.port, "Weights": {"Passing": 1, "Warning": 1},
        },
        "Checks": [
            {"Node": i.node, "CheckID": "serfHealth", "Name": "Serf Health Status",
             "Status": "passing", "ServiceID": "", "ServiceName": ""},
            {"Node": i.node, "CheckID": format!("service:{}", i.id), "Name": "grpc",
             "Status": i.status, "ServiceID": i.id, "ServiceName": i.service},
        ],
    })
}

/// Reads one HTTP/1.1 request (Content-Length bodies only).
async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = url::Url::parse(&format!("http://fake{}", first.next()?)).ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path: target.path().to_owned(),
        query: target.query_pairs().into_owned().collect(),
        headers,
        body,
        status: 0,
        at: Instant::now(),
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("wpsmesh_node=debug")
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

fn instance(id: &str, node_address: &str, address: &str, port: u16) -> Instance {
    Instance {
        id: id.into(),
        service: "wps-node".into(),
        node: format!("node-{id}"),
        node_address: node_address.into(),
        address: address.into(),
        port,
        status: "passing",
    }
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
