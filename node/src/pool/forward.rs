//! Events of a running job on their way to its caller: sent as the caller's channel has room, so
//! a slow reader never stalls the job.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tracing::debug;

use super::JobEvent;

/// Events on their way to the job's caller. They are sent as its channel has room, so a slow
/// reader never stalls the job; consecutive progress events are merged meanwhile.
pub(super) struct Forward {
    pub(super) events: mpsc::Sender<JobEvent>,
    pending: VecDeque<JobEvent>,
}

impl Forward {
    pub(super) fn new(events: mpsc::Sender<JobEvent>) -> Self {
        Self {
            events,
            pending: VecDeque::new(),
        }
    }

    pub(super) fn push(&mut self, event: JobEvent) {
        if self.events.is_closed() {
            return;
        }
        if let (JobEvent::Progress(_), Some(JobEvent::Progress(last))) =
            (&event, self.pending.back_mut())
        {
            if let JobEvent::Progress(percent) = event {
                *last = percent;
            }
            return;
        }
        self.pending.push_back(event);
    }

    pub(super) fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(super) fn send(&mut self, permit: mpsc::OwnedPermit<JobEvent>) {
        if let Some(event) = self.pending.pop_front() {
            permit.send(event);
        }
    }

    pub(super) fn closed(&mut self) {
        self.pending.clear();
    }

    /// At the job's end: sends what fits without waiting and drops the rest (the final log is
    /// in the outcome).
    pub(super) fn flush(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if self.events.try_send(event).is_err() {
                debug!(
                    dropped = self.pending.len() + 1,
                    "job events dropped, receiver full"
                );
                self.pending.clear();
            }
        }
    }
}
