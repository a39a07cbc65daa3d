//! A thread that starts every worker process of a pool.
//!
//! Workers ask the kernel to kill them when their parent dies (`PR_SET_PDEATHSIG`), and for the
//! kernel the parent is the *thread* that started them. Starting them from tokio tasks would tie
//! them to whichever runtime or blocking thread ran the task, and such threads come and go. This
//! thread lives exactly as long as the pool (until the last [`Spawner`] is dropped).

use std::io;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

type Request = (Command, oneshot::Sender<io::Result<Child>>);

/// Starts processes on the pool's spawner thread.
#[derive(Clone)]
pub(super) struct Spawner {
    requests: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the thread; children are registered with the current tokio runtime.
    pub(super) fn start() -> io::Result<Self> {
        let runtime = Handle::current();
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("wpsmesh-worker-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Self { requests })
    }

    /// Starts `command` on the spawner thread.
    pub(super) async fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, child) = oneshot::channel();
        self.requests
            .send((command, reply))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        child
            .await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}
