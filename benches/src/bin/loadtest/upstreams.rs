//! The fake upstream of a run: on a thread of the harness, or in a process of its own.

use std::net::SocketAddr;
use std::path::Path;

use llmgate_benches::load::outside::OutsideUpstream;
use llmgate_benches::load::upstream::{FakeUpstream, OpenStreams, UpstreamSettings};

use crate::options::UpstreamChoice;

pub(crate) enum Upstream {
    Inner(FakeUpstream),
    Outer(OutsideUpstream),
}

impl Upstream {
    /// Start it where `choice` says (`loadgen` is the binary that serves it outside).
    pub(crate) fn start(
        choice: UpstreamChoice,
        loadgen: &Path,
        settings: &UpstreamSettings,
    ) -> Result<Self, String> {
        match choice {
            UpstreamChoice::Inner => FakeUpstream::start(settings)
                .map(Upstream::Inner)
                .map_err(|e| e.to_string()),
            UpstreamChoice::Outer => {
                OutsideUpstream::start(loadgen, settings.stream_chunks).map(Upstream::Outer)
            }
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Upstream::Inner(upstream) => upstream.addr(),
            Upstream::Outer(upstream) => upstream.addr(),
        }
    }

    /// The slow streams open at its end; unknown for an upstream in another process.
    pub(crate) fn slow_streams(&self) -> Option<&OpenStreams> {
        match self {
            Upstream::Inner(upstream) => Some(upstream.slow_streams()),
            Upstream::Outer(_) => None,
        }
    }
}
