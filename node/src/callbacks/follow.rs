//! One attempt's callbacks, in order, on a task of its own: its statusInfo to `inProgressUri`
//! when it runs and as its progress changes (at most one per `progress_interval`, at most
//! `max_progress` in all, an unsent or unfinished one given up once the job ends), then its
//! results document or failed statusInfo once its outcome is recorded.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tracing::debug;
use wpsmesh_proto::ogcapi;
use wpsmesh_proto::process::{JobId, JobState, JobStatus, Subscriber};

use super::{Callbacks, Hook, Kind, lock};

/// An attempt followed for its callbacks.
pub(super) struct Following {
    pub callbacks: Callbacks,
    pub job: JobId,
    pub attempt: u32,
    pub subscriber: Subscriber,
    pub hook: Arc<Hook>,
}

/// The in-progress callbacks sent so far.
#[derive(Default)]
struct Sent {
    count: u32,
    percent: Option<u8>,
    at: Option<Instant>,
}

/// Waits until the job has ended (true) or its handle is gone without an end (false).
async fn ended(rx: &mut watch::Receiver<JobStatus>) -> bool {
    rx.wait_for(|s| s.state.is_terminal()).await.is_ok()
}

impl Following {
    /// Follows the job's live status until it ends (or its handle goes), then sends the final
    /// callback. `_permit` holds this attempt's place among the jobs with callbacks outstanding.
    pub(super) async fn run(
        self,
        mut rx: watch::Receiver<JobStatus>,
        _permit: OwnedSemaphorePermit,
    ) {
        let config = &self.callbacks.inner.config;
        let mut sent = Sent::default();
        loop {
            let status = rx.borrow_and_update().clone();
            if status.state.is_terminal() {
                break;
            }
            let due = status.state == JobState::Running
                && sent.count < config.max_progress
                && sent.percent != Some(status.percent_done);
            if let (Some(uri), true) = (&self.subscriber.in_progress_uri, due) {
                if let Some(next) = sent.at.map(|at| at + config.progress_interval)
                    && Instant::now() < next
                {
                    tokio::select! {
                        () = tokio::time::sleep_until(next) => continue,
                        _ = ended(&mut rx) => break,
                    }
                }
                sent = Sent {
                    count: sent.count + 1,
                    percent: Some(status.percent_done),
                    at: Some(Instant::now()),
                };
                let body = ogcapi::status_info(&status, &self.subscriber.base_url);
                tokio::select! {
                    () = self.send(Kind::InProgress, uri, body) => continue,
                    _ = ended(&mut rx) => {
                        debug!(job = %self.job, "in-progress callback given up: the job ended");
                        self.callbacks.count(Kind::InProgress, "dropped");
                        break;
                    }
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
        let status = rx.borrow().clone();
        self.finish(status, sent.count).await;
        self.callbacks.forget(&self.job, self.attempt);
    }

    /// The final callback for `status`, once the job's end is published.
    async fn finish(&self, status: JobStatus, progress_sent: u32) {
        if !status.state.is_terminal() {
            debug!(job = %self.job, attempt = self.attempt, "attempt gone without an end (handed back); no final callback");
            return;
        }
        if self.hook.abandoned.load(Ordering::SeqCst) {
            debug!(job = %self.job, attempt = self.attempt, "outcome not recorded; no final callback");
            return;
        }
        let base = &self.subscriber.base_url;
        // A job that ran too briefly for its running status to be seen still tells
        // inProgressUri once that it ran (its status as it started), in a single try so that
        // a receiver that hangs holds the final callback up for one timeout at most.
        if let (Some(uri), true) = (
            &self.subscriber.in_progress_uri,
            progress_sent == 0 && status.started_at.is_some(),
        ) {
            let started = JobStatus {
                state: JobState::Running,
                message: JobState::Running.name().into(),
                finished_at: None,
                expires_at: None,
                ..status.clone()
            };
            self.send_once(Kind::InProgress, uri, ogcapi::status_info(&started, base))
                .await;
        }
        match status.state {
            JobState::Succeeded => {
                let Some(uri) = &self.subscriber.success_uri else {
                    return;
                };
                let outputs = lock(&self.hook.outputs).take().unwrap_or_default();
                self.send(Kind::Success, uri, ogcapi::results(&outputs, base))
                    .await;
            }
            JobState::Failed => {
                if let Some(uri) = &self.subscriber.failed_uri {
                    self.send(Kind::Failed, uri, ogcapi::status_info(&status, base))
                        .await;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use wpsmesh_telemetry::metrics::Registry;

    use super::*;
    use crate::callbacks::CallbacksConfig;
    use crate::fetch::{FetchConfig, Fetcher};
    use crate::jobs::{Live, Running};
    use crate::metrics::NodeMetrics;

    /// A receiver on loopback answering 200 to every POST; the path and body of each.
    async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    let (head, body) = loop {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&data).into_owned();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_owned(), body.to_owned());
                        }
                    };
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let _ = tx.send((path, serde_json::from_str(&body).unwrap_or(Value::Null)));
                    let answer =
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        (base, rx)
    }

    fn callbacks(max_progress: u32) -> Callbacks {
        let metrics = NodeMetrics::new(&mut Registry::default());
        let fetch = FetchConfig {
            allow: vec!["127.0.0.1".into()],
            ..FetchConfig::default()
        };
        let fetcher = Fetcher::new(fetch, None).expect("fetcher");
        let config = CallbacksConfig {
            progress_interval: Duration::from_millis(20),
            max_progress,
            max_jobs: 4,
            ..CallbacksConfig::default()
        };
        Callbacks::new(config, fetcher.outbound(), metrics).expect("callbacks")
    }

    fn subscriber(base: &str) -> Subscriber {
        Subscriber {
            success_uri: Some(format!("{base}/s")),
            in_progress_uri: Some(format!("{base}/p")),
            failed_uri: Some(format!("{base}/f")),
            base_url: "http://wps.example.com".into(),
        }
    }

    fn end(job: &Live, state: JobState, message: &str) {
        let mut status = job.status();
        status.state = state;
        status.message = message.into();
        status.finished_at = Some(SystemTime::now());
        job.ended(status);
    }

    /// Waits until every followed attempt's task is done.
    async fn settled(cb: &Callbacks) {
        let all = u32::try_from(cb.inner.config.max_jobs).expect("small");
        let wait = cb.inner.jobs.acquire_many(all);
        let permits = tokio::time::timeout(Duration::from_secs(10), wait).await;
        drop(
            permits
                .expect("callback tasks end")
                .expect("semaphore open"),
        );
    }

    #[tokio::test]
    async fn progress_is_bounded_then_results_follow_in_order() {
        let (base, mut rx) = receiver().await;
        let cb = callbacks(2);
        let running = Running::default();
        let job = running.begin(JobStatus::new(
            JobId::random(),
            "native:buffer",
            JobState::Accepted,
        ));
        let hook = cb
            .follow(&job, 1, Some(&subscriber(&base)))
            .expect("followed");
        job.started("42".into());
        let (path, first) = rx.recv().await.expect("in progress");
        assert_eq!(
            (path.as_str(), &first["status"]),
            ("/p", &Value::from("running"))
        );
        for p in 1..=20 {
            job.progress(f64::from(p * 5));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hook.ran::<()>(&Ok(Vec::new()));
        end(&job, JobState::Succeeded, "succeeded");
        settled(&cb).await;
        let mut paths = vec![path];
        while let Ok((path, _)) = rx.try_recv() {
            paths.push(path);
        }
        // At most two in progress (both when the machine keeps up), then the results.
        let (last, progress) = paths.split_last().expect("posts");
        assert_eq!(last, "/s", "{paths:?}");
        assert!(
            progress.len() <= 2 && progress.iter().all(|p| p == "/p"),
            "{paths:?}"
        );
    }

    #[tokio::test]
    async fn failures_are_told_refused_outcomes_and_hand_backs_are_not() {
        let (base, mut rx) = receiver().await;
        let cb = callbacks(5);
        let running = Running::default();
        let begin = || {
            running.begin(JobStatus::new(
                JobId::random(),
                "native:buffer",
                JobState::Accepted,
            ))
        };

        // Failed before it ever ran: only the failed statusInfo, with the message.
        let failed = begin();
        let hook = cb
            .follow(&failed, 1, Some(&subscriber(&base)))
            .expect("followed");
        hook.ran::<()>(&Err(()));
        end(&failed, JobState::Failed, "input INPUT: answered 404");
        let (path, body) = rx.recv().await.expect("failed callback");
        assert_eq!(path, "/f");
        assert_eq!(body["status"], "failed");
        assert_eq!(body["message"], "input INPUT: answered 404");

        // Its outcome refused by the store (dismissed): no final callback.
        let dismissed = begin();
        let hook = cb
            .follow(&dismissed, 2, Some(&subscriber(&base)))
            .expect("followed");
        hook.ran::<()>(&Ok(Vec::new()));
        cb.abandon(&dismissed.id, 2);
        end(&dismissed, JobState::Succeeded, "succeeded");

        // Handed back to the queue: the handle goes without an end.
        let handed_back = begin();
        cb.follow(&handed_back, 1, Some(&subscriber(&base)))
            .expect("followed");
        running.end(&handed_back.id);
        drop(handed_back);
        settled(&cb).await;
        assert!(rx.try_recv().is_err(), "nothing more was sent");
    }
}
