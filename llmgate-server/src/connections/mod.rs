//! Protecting the server from connections that cost without using it: a cap on open
//! connections ([`limit`]) and timeouts for connections that send nothing ([`idle`]). The
//! body-read timeout lives with the body reader (`api/body.rs`).

mod idle;
mod limit;

pub(crate) use idle::{Activity, InFlight};
pub(crate) use limit::{ConnectionSlots, effective_limit, open_files_limit};

use http::Response;
use http_body_util::BodyExt;

use crate::response_body::Body;

/// The response body, holding `request` in flight until hyper drops it (sent, or the client
/// went away), so that the connection counts as busy while a stream is still being sent.
pub(crate) fn hold_until_sent(response: Response<Body>, request: InFlight) -> Response<Body> {
    response.map(|body| {
        body.map_frame(move |frame| {
            let _held = &request;
            frame
        })
        .boxed_unsync()
    })
}
