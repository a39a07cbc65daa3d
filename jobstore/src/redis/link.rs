//! The Redis connection as callers see it: a call made while the connection is down fails at once
//! (like fred's fail-fast `Options`, which cannot be given to `EVALSHA`, and without their window
//! before fred starts reconnecting), saying why (`connection refused`, `connection reset`,
//! `timed out`); fred keeps reconnecting in the background.
//!
//! A connection that ends only says "reset". Whether Redis is gone is asked at once: a new
//! connection to it is tried, and when it is refused that is what callers hear, not "reset".

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::clients::Client;
use fred::error::ErrorKind;
use fred::prelude::{ClientLike, EventInterface};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

use crate::StoreError;
use wpsmesh_runtime::failure::Cause;

/// Where a new connection is tried when one ends.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
}

impl Probe {
    /// `cause` of a failure, or "refused" (or "timed out") when it says the connection ended and
    /// a new one fails so.
    async fn after(probe: Option<&Self>, cause: Cause) -> Cause {
        let Some(probe) = probe.filter(|_| cause == Cause::Reset) else {
            return cause;
        };
        let connect = TcpStream::connect((probe.host.as_str(), probe.port));
        match tokio::time::timeout(probe.timeout, connect).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            Err(_) => Cause::TimedOut,
            Ok(_) => cause,
        }
    }
}

/// One client and where it stands with Redis.
pub(super) struct Link {
    client: Client,
    /// `redis at {url}` (without credentials), the start of every message.
    display: String,
    probe: Option<Probe>,
    /// Why the connection is down: set when fred reports the connection ended or a reconnection
    /// failed, cleared when it connects. fred says "connected" until it starts reconnecting
    /// (after the policy's delay), so its own state alone would let calls wait meanwhile.
    down: Arc<Mutex<Option<Cause>>>,
}

impl Link {
    /// Watches `client`'s connection events, for as long as it lives; call before connecting.
    pub(super) fn new(client: Client, display: String, probe: Option<Probe>) -> Self {
        let down = Arc::new(Mutex::new(None));
        let mut errors = client.error_rx();
        let mut connects = client.reconnect_rx();
        let state = down.clone();
        let set = move |cause: Option<Cause>| {
            *state.lock().unwrap_or_else(PoisonError::into_inner) = cause;
        };
        let asked = probe.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    error = errors.recv() => match error {
                        Ok((error, _)) => {
                            let cause = cause(&error);
                            set(Some(cause.clone()));
                            set(Some(Probe::after(asked.as_ref(), cause).await));
                        }
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                    connected = connects.recv() => match connected {
                        Ok(_) => set(None),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
        Self {
            client,
            display,
            probe,
            down,
        }
    }

    /// The client whatever its state (to connect it, to wait for it).
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// The client when it is connected; otherwise the error to answer at once.
    pub(super) fn ready(&self) -> Result<&Client, StoreError> {
        let down = self
            .down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match down {
            None if self.client.is_connected() => Ok(&self.client),
            None => Err(self.because(Cause::Other("not connected".into()))),
            Some(cause) => Err(self.because(cause)),
        }
    }

    /// A command's result, its error as the store's.
    pub(super) async fn answer<T>(
        &self,
        result: Result<T, fred::error::Error>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.failed(&e).await),
        }
    }

    /// The store error for a failed command.
    pub(super) async fn failed(&self, error: &fred::error::Error) -> StoreError {
        self.because(Probe::after(self.probe.as_ref(), cause(error)).await)
    }

    fn because(&self, cause: Cause) -> StoreError {
        StoreError::Unavailable(format!("{}: {cause}", self.display))
    }
}

/// What a fred error says happened: a connection fred saw end is reset; otherwise by the text
/// (fred renders io errors with `Debug`).
fn cause(error: &fred::error::Error) -> Cause {
    if *error.kind() == ErrorKind::Canceled {
        return Cause::Reset;
    }
    Cause::of_text(error.details()).unwrap_or_else(|| Cause::other(error.details()))
}
