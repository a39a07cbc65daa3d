//! A fake Consul agent for tests: a real HTTP server on loopback speaking the documented shapes
//! of `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/:id`,
//! `GET /v1/agent/service/:id` and blocking `GET /v1/health/service/:name` with
//! `X-Consul-Index`. It records every request and the status it answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One request the fake received, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
    pub at: Instant,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// An instance in the fake catalog, as `/v1/health/service/:name` reports it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub service: String,
    pub node: String,
    pub node_address: String,
    pub address: String,
    pub port: u16,
    /// `passing`, `warning` or `critical`.
    pub status: &'static str,
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

/// A fake Consul agent on loopback; clones share it.
#[derive(Clone)]
pub struct FakeConsul {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// The Raft-like index of the health data; bumped on every catalog change.
    index: Arc<watch::Sender<u64>>,
}

impl FakeConsul {
    pub async fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    pub async fn start_on(port: u16) -> Self {
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

    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn calls(&self) -> Vec<(String, String, u16)> {
        self.requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect()
    }

    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// What a dev-mode agent does when it restarts: forget every service.
    pub fn forget_services(&self) {
        self.state.lock().unwrap().services.clear();
    }

    /// The register body of service `id`, while the agent knows it.
    pub fn service(&self, id: &str) -> Option<Value> {
        self.state.lock().unwrap().services.get(id).cloned()
    }

    pub fn has_service(&self, id: &str) -> bool {
        self.state.lock().unwrap().services.contains_key(id)
    }

    pub fn set_instances(&self, instances: Vec<Instance>) {
        self.state.lock().unwrap().instances = instances;
        self.index.send_modify(|i| *i += 1);
    }

    pub fn update(&self, f: impl FnOnce(&mut Vec<Instance>)) {
        f(&mut self.state.lock().unwrap().instances);
        self.index.send_modify(|i| *i += 1);
    }

    /// A write elsewhere in the cluster: the index moves, the service's instances do not.
    pub fn bump_index(&self) {
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

/// A passing instance of `wps-node`.
pub fn instance(id: &str, node_address: &str, address: &str, port: u16) -> Instance {
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
