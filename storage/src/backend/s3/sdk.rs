//! The S3 client as the backend configures it, and how its errors map to storage errors.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use wpsmesh_proto::storage::ObjectId;

use crate::config::S3Config;
use crate::error::StorageError;

/// An S3 client configured as the backend uses it (endpoint, path style, credentials from the
/// config or `AWS_*` variables, checksums only where required, bounded retries).
pub fn client(c: &S3Config) -> anyhow::Result<Client> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let (access, secret) = if c.access_key.is_empty() {
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    } else {
        (c.access_key.clone(), c.secret_key.clone())
    };
    anyhow::ensure!(
        !access.is_empty() && !secret.is_empty(),
        "s3 credentials missing: set storage.s3.access_key/secret_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    );
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(c.region.clone()))
        .credentials_provider(Credentials::new(
            access,
            secret,
            None,
            None,
            "wpsmesh-config",
        ))
        .force_path_style(c.path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(c.max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if !c.endpoint.is_empty() {
        b = b.endpoint_url(&c.endpoint);
    }
    Ok(Client::from_conf(b.build()))
}

/// Maps an SDK error: unreachable endpoint → `Unavailable` naming it, 404 on an object →
/// `NotFound`, anything else → `Backend` with the SDK's full context.
pub(super) fn sdk_error<E>(
    e: SdkError<E, HttpResponse>,
    endpoint: &str,
    id: Option<ObjectId>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let (Some(id), Some(raw)) = (id, e.raw_response())
        && raw.status().as_u16() == 404
    {
        return StorageError::NotFound(id);
    }
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StorageError::Unavailable {
            endpoint: endpoint.to_owned(),
            reason: DisplayErrorContext(&e).to_string(),
        },
        _ => StorageError::Backend(DisplayErrorContext(&e).to_string()),
    }
}
