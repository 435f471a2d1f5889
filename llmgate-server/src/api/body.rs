//! Reading a request body under the configured size and time limits, and decoding it as JSON:
//! every endpoint that takes a body comes through here, so all of them refuse the same things
//! (too large, too slow, malformed, trailing bytes after the value) with the same error shape.
//!
//! Contract: docs/http-api.md#limits

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind};
use serde::de::DeserializeOwned;

use crate::config::ServerConfig;

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::RequestTooLarge,
        format!("The request body is larger than the limit of {limit} bytes."),
    )
    .with_code("request_too_large")
}

fn too_slow(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::RequestTimeout,
        format!(
            "The request body did not arrive within {} ms.",
            timeout.as_millis()
        ),
    )
    .with_code("request_timeout")
}

/// The whole body within `server.max_body_bytes` and `server.body_read_timeout_ms`: 413 when
/// it is (or announces to be) larger, 408 when it comes too slowly (a client trickling a body
/// would otherwise hold its connection and a task forever).
pub(crate) async fn read_limited(
    request: Request<Incoming>,
    settings: &ServerConfig,
) -> Result<Bytes, Error> {
    let timeout = Duration::from_millis(settings.body_read_timeout_ms);
    tokio::time::timeout(timeout, read_within(request, settings.max_body_bytes))
        .await
        .map_err(|_| too_slow(timeout))?
}

/// The body, read as [`read_limited`] does, decoded as JSON into `T` by [`decode_json`].
pub(crate) async fn read_json<T: DeserializeOwned>(
    request: Request<Incoming>,
    settings: &ServerConfig,
) -> Result<T, Error> {
    let body = read_limited(request, settings).await?;
    decode_json(&body)
}

/// One JSON value into `T`, strictly: anything but whitespace after it is refused. A refusal is
/// 400 `invalid_request_error` with serde's message and, as `param`, the failing field's path
/// (`messages[0].role`) or the name of a missing field.
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    // The common case, a good body, skips the path tracking, which only names a bad field.
    // (`from_slice` refuses trailing bytes too.)
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let message = error.inner().to_string();
        let path = error.path().to_string();
        let param = if path == "." {
            missing_field(&message)
        } else {
            Some(path)
        };
        let refused = Error::invalid_request(format!("Invalid request body: {message}"));
        match param {
            Some(param) => refused.with_param(param),
            None => refused,
        }
    })?;
    deserializer
        .end()
        .map_err(|error| Error::invalid_request(format!("Invalid request body: {error}")))?;
    Ok(value)
}

/// `missing field `messages` at line 1 ...` names the field serde could not find.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

async fn read_within(request: Request<Incoming>, limit: u64) -> Result<Bytes, Error> {
    let announced = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(request.into_body(), cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(error) => {
            tracing::debug!(%error, "reading a request body failed");
            Err(Error::invalid_request(
                "The request body could not be read.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn trailing_bytes_after_the_value_are_refused() {
        assert!(decode_json::<Pair>(br#" {"name":"a","count":1} "#).is_ok());
        for bad in [
            &br#"{"name":"a","count":1} x"#[..],
            br#"{"name":"a","count":1}{}"#,
            br#"{"name":"a","count":1},"#,
        ] {
            let error = decode_json::<Pair>(bad).unwrap_err();
            assert_eq!(
                (error.status(), error.kind().type_name()),
                (400, "invalid_request_error"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let wrong = decode_json::<Pair>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(wrong.param(), Some("count"));
        let missing = decode_json::<Pair>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(missing.param(), Some("count"));
        let unknown = decode_json::<Pair>(br#"{"name":"a","count":1,"x":2}"#).unwrap_err();
        assert!(
            unknown.message().contains("unknown field"),
            "{}",
            unknown.message()
        );
    }
}
