//! The edge's storage client, shared by the file API and WPS raw outputs: every call has a
//! deadline suited to its kind — the short ones (stat, delete, opening a download) the storage
//! timeout, the streams at most the idle timeout between two chunks and no total — and a
//! deadline missed is a DEADLINE_EXCEEDED status that [`Failure`] reads as `timed out`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::warn;
use wpsmesh_proto::wire::storage::v1::storage_service_client::StorageServiceClient;
use wpsmesh_proto::wire::storage::v1::{
    DeleteRequest, DownloadRequest, ObjectInfo, StatRequest, download_response,
};

use wpsmesh_proto::text;
use wpsmesh_runtime::failure::Failure;

/// Default deadline of the short storage calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest pause between two chunks of a transfer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A storage client with its deadlines; cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    client: StorageServiceClient<Channel>,
    timeout: Duration,
    idle: Duration,
}

impl From<StorageServiceClient<Channel>> for Storage {
    /// A client with the default deadlines.
    fn from(client: StorageServiceClient<Channel>) -> Self {
        Self::new(client, DEFAULT_TIMEOUT, DEFAULT_IDLE_TIMEOUT)
    }
}

impl Storage {
    /// `client` (its message limit raised for 1 MiB chunks) with a `timeout` for short calls
    /// and an `idle` timeout between the chunks of a stream.
    pub fn new(client: StorageServiceClient<Channel>, timeout: Duration, idle: Duration) -> Self {
        Self {
            client: client.max_decoding_message_size(wpsmesh_runtime::grpc::MAX_MESSAGE),
            timeout,
            idle,
        }
    }

    /// A client for a call of its own (uploads drive theirs, see `upload`).
    pub(crate) fn client(&self) -> StorageServiceClient<Channel> {
        self.client.clone()
    }

    /// The longest pause between two chunks of a stream.
    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }

    /// An object's metadata; `None` when storage answered without it.
    pub(crate) async fn stat(&self, id: &str) -> Result<Option<ObjectInfo>, Status> {
        let request = StatRequest { id: id.to_owned() };
        let answer = within(self.timeout, self.client().stat(request)).await?;
        Ok(answer.into_inner().object)
    }

    pub(crate) async fn delete(&self, id: &str) -> Result<(), Status> {
        let request = DeleteRequest { id: id.to_owned() };
        within(self.timeout, self.client().delete(request)).await?;
        Ok(())
    }

    /// Opens a download: the object's metadata (the stream's first message, within the short
    /// deadline) and its bytes as a stream for an HTTP body, each chunk within the idle timeout.
    pub(crate) async fn download(
        &self,
        id: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<
        (
            ObjectInfo,
            impl Stream<Item = Result<Bytes, std::io::Error>> + Send + use<>,
        ),
        Status,
    > {
        let request = DownloadRequest {
            id: id.to_owned(),
            offset,
            length,
        };
        let mut client = self.client();
        let (info, mut stream) = within(self.timeout, async move {
            let mut stream = client.download(request).await?.into_inner();
            match stream.message().await?.and_then(|m| m.part) {
                Some(download_response::Part::Object(info)) => Ok((info, stream)),
                Some(_) => Err(Status::internal("storage sent data before metadata")),
                None => Err(Status::internal("storage sent no metadata")),
            }
        })
        .await?;
        let (object, idle) = (info.id.clone(), self.idle);
        let body = async_stream::stream! {
            loop {
                let message = match within(idle, stream.message()).await {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(status) => {
                        let reason = Failure::of_status(&status).map_or_else(
                            || wpsmesh_proto::text::one_line(&wpsmesh_proto::text::shown(status.message())),
                            |f| f.reason().to_owned(),
                        );
                        warn!(object = %object, error = %reason, "download broke off");
                        yield Err(std::io::Error::other(format!("file storage failed: {reason}")));
                        break;
                    }
                };
                match message.part {
                    Some(download_response::Part::Chunk(bytes)) => yield Ok(bytes),
                    _ => {
                        yield Err(std::io::Error::other("storage sent a second metadata message"));
                        break;
                    }
                }
            }
        };
        Ok((info, body))
    }
}

/// `call` given `deadline` to finish; [`deadline_missed`] when it does not.
pub(crate) async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|elapsed| Err(deadline_missed(elapsed)))
}

/// The status of a storage deadline missed: DEADLINE_EXCEEDED with the elapsed timer as its
/// source, which [`Failure::of_status`] reads as timed out.
pub(crate) fn deadline_missed(elapsed: tokio::time::error::Elapsed) -> Status {
    let mut status = Status::deadline_exceeded("storage did not answer in time");
    status.set_source(Arc::new(elapsed));
    status
}

/// The one-line text of an edge's storage call that failed for want of storage, e.g. `file
/// storage is unavailable: connection refused`: it could not be reached or kept silent (a
/// transport failure), or it said it is unavailable (its own backend down). `None` for its
/// other answers (not found, invalid).
pub fn storage_unavailable(status: &Status) -> Option<String> {
    let reason = match Failure::of_status(status) {
        Some(failure) => failure.reason().to_owned(),
        None if status.code() == Code::Unavailable => {
            text::one_line(&text::shown(status.message()))
        }
        None => return None,
    };
    Some(format!("file storage is unavailable: {reason}"))
}
