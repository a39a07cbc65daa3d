//! Node benchmark of issue 5: small asynchronous jobs (native:centroids on 10 points) across two
//! nodes sharing a real Redis job store — queue wait while a worker is free, accepted-to-finished
//! throughput against synchronous Execute, and Redis round trips per job — all in one run.
//!
//! Run: `cargo build --release --bins && cargo bench -p wpsmesh-node --bench async_jobs`
//! (`WPSMESH_BENCH_JOBS=200` for a shorter run; `WPSMESH_BENCH_LOG=info` for node logs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use wpsmesh_jobstore::StoreKind;
use wpsmesh_proto::wire::process::v1::process_service_client::ProcessServiceClient;
use wpsmesh_proto::wire::process::v1::{
    ExecuteRequest, GetStatusRequest, Input, JobState, JobStatus, ListProcessesRequest, Reference,
    StoredObject, SubmitRequest, input, reference,
};
use wpsmesh_runtime::grpc;
use wpsmesh_tests::bench::setting;
use wpsmesh_tests::{RedisServer, data};

/// The store's key prefix (the default), so the expiry set is `{wpsmesh}:expiry`.
const PREFIX: &str = "wpsmesh";
/// How often the bench looks at the expiry set while the throughput phase runs.
const POLL: Duration = Duration::from_millis(50);
/// Concurrent submitters in the throughput phase.
const SUBMITTERS: usize = 4;
/// Queue wait goal of the issue, at p50, while a worker is free.
const GOAL_MS: f64 = 5.0;

type Node = ProcessServiceClient<Channel>;

/// The bench's own line to Redis: one command per connection (`RedisServer::command`'s client),
/// counted by name so they can be subtracted from the server's statistics.
struct Redis {
    addr: SocketAddr,
    own: Mutex<BTreeMap<String, u64>>,
}

impl Redis {
    async fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        *self
            .own
            .lock()
            .expect("own command counts")
            .entry(args[0].to_lowercase())
            .or_default() += 1;
        let addr = self.addr;
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wpsmesh_tests::redis_command(addr, &args)
        })
        .await?
    }

    fn own(&self) -> BTreeMap<String, u64> {
        self.own.lock().expect("own command counts").clone()
    }

    /// Calls per command (`cmdstat_<name>:calls=N`), commands run inside scripts included.
    async fn commandstats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let info = self.command(&["INFO", "commandstats"]).await?;
        Ok(info
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect())
    }

    async fn finished_jobs(&self) -> anyhow::Result<u64> {
        Ok(self
            .command(&["ZCARD", &format!("{{{PREFIX}}}:expiry")])
            .await?
            .parse()?)
    }
}

/// `after - before - own`, per command, zeros left out.
fn delta(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
    own: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or(0);
            let o = own.get(k).copied().unwrap_or(0);
            (k.clone(), a.saturating_sub(b).saturating_sub(o))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn millis(t: Option<&prost_types::Timestamp>) -> anyhow::Result<i64> {
    let t = t.ok_or_else(|| anyhow::anyhow!("timestamp missing"))?;
    Ok(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// A finished job's created, started and finished times, in ms.
fn times(s: &JobStatus) -> anyhow::Result<(i64, i64, i64)> {
    Ok((
        millis(s.created_at.as_ref())?,
        millis(s.started_at.as_ref())?,
        millis(s.finished_at.as_ref())?,
    ))
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// native:centroids of stored object `object` (`{id}.{ext}`).
fn centroids(object: &str) -> ExecuteRequest {
    let (id, extension) = object.split_once('.').unwrap_or((object, ""));
    ExecuteRequest {
        process_id: "native:centroids".into(),
        inputs: vec![Input {
            id: "INPUT".into(),
            value: Some(input::Value::Reference(Reference {
                source: Some(reference::Source::Object(StoredObject {
                    id: id.into(),
                    extension: extension.into(),
                })),
                format: None,
            })),
        }],
        ..Default::default()
    }
}

/// Two nodes with one worker each on the shared storage and Redis, warmed up.
struct Mesh {
    nodes: Vec<Node>,
    /// `:PORT`: job records name the node `{host}:{port}`.
    names: Vec<String>,
    stop: Vec<oneshot::Sender<()>>,
    running: JoinSet<()>,
}

impl Mesh {
    /// Starts both nodes and warms them up: 3 Execute and 3 Submit (each waited for) per node.
    async fn start(
        round: usize,
        dir: &Path,
        storage: &str,
        redis_url: &str,
        href: &str,
    ) -> anyhow::Result<Self> {
        let mut mesh = Self {
            nodes: Vec::new(),
            names: Vec::new(),
            stop: Vec::new(),
            running: JoinSet::new(),
        };
        for i in 0..2 {
            let (stop, stopped) = oneshot::channel::<()>();
            let (node, name) = start_node(
                &format!("{round}-{i}"),
                dir,
                storage,
                redis_url,
                &mut mesh.running,
                async move {
                    let _ = stopped.await;
                },
            )
            .await?;
            mesh.nodes.push(node);
            mesh.names.push(name);
            mesh.stop.push(stop);
        }
        for node in &mesh.nodes {
            let mut node = node.clone();
            for _ in 0..3 {
                node.execute(centroids(href)).await?;
            }
            for _ in 0..3 {
                let id = submit(&mut node, href).await?;
                wait_done(&mut node, &id).await?;
            }
        }
        Ok(mesh)
    }

    /// Stops both nodes and waits until they have.
    async fn stop(mut self) -> anyhow::Result<()> {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            while self.running.join_next().await.is_some() {}
        })
        .await
        .map_err(|_| anyhow::anyhow!("nodes did not stop within 60 s"))
    }
}

/// Starts a node with one worker on the shared storage and Redis; returns its client and
/// `:PORT`.
async fn start_node(
    i: &str,
    dir: &Path,
    storage: &str,
    redis_url: &str,
    running: &mut JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Node, String)> {
    let mut config = wpsmesh_node::Config {
        storage: storage.into(),
        work_dir: dir.join(format!("work-{i}")),
        ..Default::default()
    };
    config.pool.workers = 1;
    config.jobs.store = StoreKind::Redis;
    config.jobs.redis_url = redis_url.into();
    config.jobs.prefix = PREFIX.into();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let uri = format!("http://127.0.0.1:{port}");
    let name = i.to_owned();
    running.spawn(async move {
        if let Err(e) = wpsmesh_node::run(config, listener, shutdown).await {
            eprintln!("node {name} stopped: {e:#}");
        }
    });
    let mut node = ProcessServiceClient::new(grpc::channel(&uri)?);
    let deadline = Instant::now() + Duration::from_secs(120);
    while node.list_processes(ListProcessesRequest {}).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "node {i} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((node, format!(":{port}")))
}

async fn submit(node: &mut Node, href: &str) -> anyhow::Result<String> {
    let job = node
        .submit(SubmitRequest {
            execute: Some(centroids(href)),
        })
        .await?
        .into_inner()
        .job
        .ok_or_else(|| anyhow::anyhow!("Submit answered no job"))?;
    Ok(job.job_id)
}

async fn status(node: &mut Node, id: &str) -> anyhow::Result<JobStatus> {
    node.get_status(GetStatusRequest { job_id: id.into() })
        .await?
        .into_inner()
        .job
        .ok_or_else(|| anyhow::anyhow!("GetStatus answered no job"))
}

/// Polls one job every 2 ms until it has ended; fails unless it succeeded.
async fn wait_done(node: &mut Node, id: &str) -> anyhow::Result<JobStatus> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(node, id).await?;
        match s.state() {
            JobState::Successful => return Ok(s),
            JobState::Failed | JobState::Dismissed => {
                anyhow::bail!("job {id} ended {:?}: {}", s.state(), s.message)
            }
            _ => {}
        }
        anyhow::ensure!(Instant::now() < deadline, "job {id} did not finish in 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Statuses of many jobs, 8 requests in flight.
async fn statuses(nodes: &[Node], ids: &[String]) -> anyhow::Result<Vec<JobStatus>> {
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let ids = std::sync::Arc::new(ids.to_vec());
    let mut tasks = JoinSet::new();
    for c in 0..8 {
        let (mut node, next, ids) = (nodes[c % nodes.len()].clone(), next.clone(), ids.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                out.push((i, status(&mut node, id).await?));
            }
            anyhow::Ok(out)
        });
    }
    let mut all = Vec::with_capacity(ids.len());
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

/// Counts of what the store's Lua scripts ran, told apart by a command only one script runs
/// (no job is reaped, dismissed or expired during the bench).
struct Scripts {
    submit: u64,
    claim: u64,
    finish: u64,
    heartbeat: u64,
    reap: u64,
}

impl Scripts {
    fn from(d: &BTreeMap<String, u64>) -> Self {
        let n = |k: &str| d.get(k).copied().unwrap_or(0);
        // submit.lua: XLEN; claim.lua: HINCRBY; reap.lua: XAUTOCLAIM; PEXPIREAT: submit.lua and
        // finish.lua (keep); HMGET (owns): finish.lua and heartbeat.lua.
        let submit = n("xlen");
        let claim = n("hincrby");
        let reap = n("xautoclaim");
        let finish = n("pexpireat").saturating_sub(submit);
        let heartbeat = n("hmget").saturating_sub(finish);
        Self {
            submit,
            claim,
            finish,
            heartbeat,
            reap,
        }
    }

    /// Calls of `cmd` made inside these scripts (the rest came over the network): all of those
    /// the store only runs in scripts, a share of the three it also sends on its own.
    fn inside(&self, cmd: &str, calls: u64) -> u64 {
        match cmd {
            // Sent on their own by get (GetStatus), expired and forget (housekeeping).
            "hgetall" => self.claim.min(calls),
            "zrangebyscore" => self.reap.min(calls),
            "zrem" => self.finish.min(calls),
            // Only ever run by the scripts (TIME: every script's first line, now.lua).
            "time" | "xlen" | "xadd" | "hset" | "pexpireat" | "xack" | "xdel" | "hget"
            | "hincrby" | "zadd" | "hmget" | "xautoclaim" | "hdel" | "publish" => calls,
            _ => 0,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: usize = setting("WPSMESH_BENCH_JOBS", 1000);
    let one_by_one = (jobs / 5).max(10);
    if let Ok(filter) = std::env::var("WPSMESH_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let bench_started = Instant::now();
    let dir = tempfile::tempdir()?;
    let points = data::derive(
        dir.path(),
        "points.geojson",
        &format!("{} LIMIT 10", data::POINTS_SQL),
    );

    let server = RedisServer::start()?;
    let redis = Redis {
        addr: SocketAddr::from(([127, 0, 0, 1], server.port())),
        own: Mutex::new(BTreeMap::new()),
    };
    let storage_uri = wpsmesh_storage::spawn_local(dir.path().join("storage")).await?;
    let redis_url = server.url();
    let storage = wpsmesh_node::outputs::Storage::new(grpc::channel(&storage_uri)?);
    let info = wpsmesh_node::outputs::store_file(&storage, &points, "points.geojson").await?;
    let href = format!("{}.{}", info.id, info.format);
    // Each phase gets two fresh, warmed-up nodes, so every phase starts with workers of the
    // same age (a worker slows down as it runs jobs, see "worker time by tenth" below).
    let start = |round| Mesh::start(round, dir.path(), &storage_uri, &redis_url, &href);

    // 1. Warm-up (in Mesh::start) and 2. queue wait while a worker is free: one job at a time,
    // alternating nodes.
    let mesh = start(1).await?;
    let (nodes, names) = (mesh.nodes.clone(), mesh.names.clone());
    let mut waited = Vec::with_capacity(one_by_one);
    let mut submit_rpc = Vec::with_capacity(one_by_one);
    for i in 0..one_by_one {
        let mut node = nodes[i % 2].clone();
        let t = Instant::now();
        let id = submit(&mut node, &href).await?;
        submit_rpc.push(t.elapsed().as_secs_f64() * 1000.0);
        wait_done(&mut node, &id).await?;
        waited.push(id);
    }
    let one_by_one_status = statuses(&nodes, &waited).await?;
    let mut queue_wait = Vec::new();
    let mut run_time = Vec::new();
    for s in &one_by_one_status {
        let (created, started, finished) = times(s)?;
        queue_wait.push((started - created) as f64);
        run_time.push((finished - started) as f64);
    }
    let claimed_by_other = one_by_one_status
        .iter()
        .zip(0..)
        .filter(|(s, i)| !s.node.ends_with(&names[i % 2]))
        .count();
    for v in [&mut queue_wait, &mut run_time, &mut submit_rpc] {
        v.sort_by(f64::total_cmp);
    }

    mesh.stop().await?;

    // 3. Throughput: every job submitted as fast as possible, then wait for all to finish.
    let mesh = start(2).await?;
    let (nodes, names) = (mesh.nodes.clone(), mesh.names.clone());
    let rss_before = worker_rss();
    let finished_before = redis.finished_jobs().await?;
    let own_before = redis.own();
    let stats_before = redis.commandstats().await?;
    let t = Instant::now();
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let mut submitters = JoinSet::new();
    for _ in 0..SUBMITTERS {
        let (nodes, next, href) = (nodes.clone(), next.clone(), href.clone());
        submitters.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                let mut node = nodes[i % 2].clone();
                ids.push(submit(&mut node, &href).await?);
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::with_capacity(jobs);
    while let Some(r) = submitters.join_next().await {
        ids.extend(r??);
    }
    let submitted_in = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(240);
    while redis.finished_jobs().await? < finished_before + jobs as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{jobs} jobs did not finish within 240 s"
        );
        tokio::time::sleep(POLL).await;
    }
    let observed = t.elapsed();
    let async_rss = (rss_before, worker_rss());
    let own_after = redis.own();
    let stats_after = redis.commandstats().await?;
    let own = delta(&own_after, &own_before, &BTreeMap::new());
    let rt = delta(&stats_after, &stats_before, &own);

    let async_status = statuses(&nodes, &ids).await?;
    let failed = async_status
        .iter()
        .filter(|s| s.state() != JobState::Successful)
        .count();
    anyhow::ensure!(failed == 0, "{failed} of {jobs} async jobs did not succeed");
    let times = async_status
        .iter()
        .map(times)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first_created = times.iter().map(|t| t.0).min().unwrap_or(0);
    let last_finished = times.iter().map(|t| t.2).max().unwrap_or(0);
    let span = (last_finished - first_created) as f64 / 1000.0;
    let async_tput = jobs as f64 / span;
    let on_first = async_status
        .iter()
        .filter(|s| s.node.ends_with(&names[0]))
        .count();
    let mut async_worker: Vec<(i64, i64)> = times.iter().map(|t| (t.1, t.2)).collect();
    async_worker.sort_unstable();
    let async_worker: Vec<f64> = async_worker.iter().map(|(s, f)| (f - s) as f64).collect();
    mesh.stop().await?;

    // 4. Baseline: the same jobs as synchronous Execute, one client per node.
    let mesh = start(3).await?;
    let nodes = mesh.nodes.clone();
    let rss_before = worker_rss();
    let t = Instant::now();
    let mut clients = JoinSet::new();
    for (c, node) in nodes.iter().enumerate() {
        let (mut node, href) = (node.clone(), href.clone());
        let share = jobs / 2 + usize::from(c < jobs % 2);
        clients.spawn(async move {
            let mut took = Vec::with_capacity(share);
            for _ in 0..share {
                let job = node.execute(centroids(&href)).await?.into_inner().job;
                let job = job.ok_or_else(|| anyhow::anyhow!("Execute answered no job"))?;
                took.push((
                    millis(job.started_at.as_ref())?,
                    millis(job.finished_at.as_ref())?,
                ));
            }
            anyhow::Ok(took)
        });
    }
    let mut sync_worker = Vec::with_capacity(jobs);
    while let Some(r) = clients.join_next().await {
        sync_worker.extend(r??);
    }
    let sync_tput = jobs as f64 / t.elapsed().as_secs_f64();
    let sync_rss = (rss_before, worker_rss());
    sync_worker.sort_unstable();
    let sync_worker: Vec<f64> = sync_worker.iter().map(|(s, f)| (f - s) as f64).collect();
    mesh.stop().await?;

    // 5. Redis round trips per job in phase 3.
    let scripts = Scripts::from(&rt);
    let mut network: BTreeMap<String, u64> = rt
        .iter()
        .map(|(k, v)| (k.clone(), v - scripts.inside(k, *v)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let inside: u64 = rt.iter().map(|(k, v)| scripts.inside(k, *v)).sum();
    let total: u64 = network.values().sum();
    let per = |v: u64| v as f64 / jobs as f64;
    let empty_reads = network
        .get("xreadgroup")
        .copied()
        .unwrap_or(0)
        .saturating_sub(scripts.claim);
    let housekeeping = scripts.reap + network.get("zrangebyscore").copied().unwrap_or(0);
    let per_job = total.saturating_sub(housekeeping + empty_reads);

    println!(
        "native:centroids on 10 points, async through a Redis job store (redis-server {}, \
         appendfsync always), 2 nodes x 1 worker, {} cores",
        server
            .command(&["INFO", "server"])
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim(),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    println!("Run: cargo bench -p wpsmesh-node --bench async_jobs\n");

    println!(
        "Queue wait while a worker is free ({one_by_one} jobs one at a time, alternating nodes; \
         started_at - created_at, Redis clock, 1 ms resolution)"
    );
    println!("| figure | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("queue wait (ms)", &queue_wait),
        ("run on worker, claim to finish (ms)", &run_time),
        ("Submit RPC, client side (ms)", &submit_rpc),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            pct(v, 100.0)
        );
    }
    let p50 = pct(&queue_wait, 50.0);
    println!(
        "goal: queue wait p50 < {GOAL_MS} ms: {} ({p50:.1} ms); {claimed_by_other} of \
         {one_by_one} claimed by the node they were not submitted to\n",
        if p50 < GOAL_MS { "met" } else { "NOT met" }
    );

    println!("Throughput, {jobs} jobs");
    println!("| path | jobs/s | vs sync |");
    println!("|---|---|---|");
    println!(
        "| async: Submit ({SUBMITTERS} submitters, alternating nodes), first created_at to last \
         finished_at ({span:.2} s) | {async_tput:.1} | {:.2} |",
        async_tput / sync_tput
    );
    println!("| sync: Execute, one client per node | {sync_tput:.1} | 1.00 |");
    println!(
        "all submitted in {:.2} s; all seen finished after {:.2} s (bench polls every {} ms); \
         {on_first} ran on node 0, {} on node 1",
        submitted_in.as_secs_f64(),
        observed.as_secs_f64(),
        POLL.as_millis(),
        jobs - on_first
    );
    println!(
        "worker time per job (ms, mean per tenth of the phase, by start): async {} \
         (claim to finish, input download included); sync {} (worker start to finish)",
        tenths(&async_worker),
        tenths(&sync_worker)
    );
    println!(
        "worker RSS (MiB, both workers) before -> after: async {}; sync {}\n",
        rss_text(async_rss),
        rss_text(sync_rss)
    );

    println!(
        "Redis round trips in the throughput phase (INFO commandstats delta, {} bench commands \
         subtracted, commands run inside Lua scripts left out)",
        own.values().sum::<u64>()
    );
    println!("| command | calls | per job | what |");
    println!("|---|---|---|---|");
    if let Some(e) = network.remove("evalsha") {
        println!(
            "| evalsha | {e} | {:.3} | scripts: submit {}, claim {}, finish {}, heartbeat {}, \
             reap {} |",
            per(e),
            scripts.submit,
            scripts.claim,
            scripts.finish,
            scripts.heartbeat,
            scripts.reap
        );
    }
    if let Some(x) = network.remove("xreadgroup") {
        println!(
            "| xreadgroup | {x} | {:.3} | claim's blocking queue read: {} took a job, {empty_reads} \
             timed out empty |",
            per(x),
            scripts.claim
        );
    }
    if let Some(z) = network.remove("zrangebyscore") {
        println!(
            "| zrangebyscore | {z} | {:.3} | housekeeping: expired jobs, one per sweep |",
            per(z)
        );
    }
    for (k, v) in &network {
        println!("| {k} | {v} | {:.3} | |", per(*v));
    }
    println!("| **round trips** | {total} | {:.3} | |", per(total));
    println!(
        "| of which per job | {per_job} | {:.3} | submit, queue read, claim, finish, heartbeats |",
        per(per_job)
    );
    println!(
        "| of which housekeeping | {housekeeping} | {:.3} | reap + expired, every \
         sweep_interval (1 s) per node |",
        per(housekeeping)
    );
    println!(
        "| of which idle queue reads | {empty_reads} | {:.3} | XREADGROUP BLOCK timing out (2 s) |",
        per(empty_reads)
    );
    println!(
        "| commands inside scripts | {inside} | {:.3} | not round trips |",
        per(inside)
    );
    println!(
        "\nbench wall time {:.0} s",
        bench_started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Means of `v` over ten equal slices, as text.
fn tenths(v: &[f64]) -> String {
    v.chunks(v.len().div_ceil(10).max(1))
        .map(|c| format!("{:.1}", c.iter().sum::<f64>() / c.len() as f64))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resident memory of this process's `wpsmesh-worker` children, in MiB each.
fn worker_rss() -> Vec<f64> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .unwrap_or("")
                .to_owned()
        };
        if field("Name:") == "wpsmesh-worker" && field("PPid:") == me {
            let kb = field("VmRSS:");
            if let Some(kb) = kb
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
            {
                out.push(kb / 1024.0);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn rss_text((before, after): (Vec<f64>, Vec<f64>)) -> String {
    let show = |v: &[f64]| {
        v.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join("+")
    };
    format!("{} -> {}", show(&before), show(&after))
}
