//! Timing request paths over one keep-alive HTTP/1.1 connection each, direct to a fake upstream
//! and through the gateway, as JSON (to the last byte) and streamed (to the first body byte and
//! to the last): the rig of the messages and responses benches.
#![allow(
    dead_code,
    reason = "the embeddings bench shares `common` and times its own way"
)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use llmgate_benches::load::client::{Connection, Keys, Target, Timing};
use llmgate_testkit::{FakeUpstream, Recorded, Reply};
use tokio::runtime::Runtime;

/// A streamed answer's text pieces.
pub const PIECES: [&str; 8] = [
    "Hello", " there", ", how", " can", " I", " help", " you", " today?",
];

/// The whole answer's text.
pub const TEXT: &str = "Hello there, how can I help you today?";

/// One path to time: its name, the way it is sent (`direct` or `gateway`), where to, and what
/// the bench's body function makes of `ask`.
pub struct Case<A> {
    pub path: &'static str,
    pub way: &'static str,
    pub target: Target,
    pub ask: A,
}

/// A fake upstream answering with the bench's replies, and the gateway in front of it.
pub struct Rig {
    runtime: Runtime,
    upstream: FakeUpstream,
    gateway: super::Gateway,
}

impl Rig {
    /// The fake upstream answering with `replies` and a gateway with `yaml`'s providers and
    /// models (`${UPSTREAM}` is the fake's URL).
    pub fn start(yaml: &str, replies: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Rig {
        let runtime = Runtime::new().expect("runtime");
        let (upstream, gateway) = runtime.block_on(async {
            let upstream = FakeUpstream::start().await;
            upstream.respond_with(replies);
            let gateway = super::start(yaml, &upstream.url()).await;
            (upstream, gateway)
        });
        Rig {
            runtime,
            upstream,
            gateway,
        }
    }

    /// `path` on the fake upstream, with a key it ignores.
    pub fn direct(&self, path: &'static str) -> Target {
        Target {
            addr: super::address(&self.upstream.url()),
            path,
            keys: Keys::one("Bearer sk-bench-0000".to_owned()),
        }
    }

    /// `path` on the gateway, as the funded user.
    pub fn through(&self, path: &'static str) -> Target {
        Target {
            addr: self.gateway.addr,
            path,
            keys: Keys::one(format!("Bearer {}", self.gateway.key)),
        }
    }

    /// Every case as JSON (`json/{way}/{path}`), to the first byte of a stream
    /// (`ttfb/...`) and to its last (`stream/...`), in one criterion group; `body` makes a
    /// case's request, streamed or not.
    pub fn bench<A>(
        &self,
        c: &mut Criterion,
        group: &str,
        cases: &[Case<A>],
        body: impl Fn(&A, bool) -> Bytes,
    ) {
        let mut group = c.benchmark_group(group);
        let kinds = [
            ("json", false, false),
            ("ttfb", true, true),
            ("stream", true, false),
        ];
        for (kind, stream, first_byte) in kinds {
            for case in cases {
                let id = format!("{kind}/{}/{}", case.way, case.path);
                let body = body(&case.ask, stream);
                self.time(&mut group, &id, &case.target, &body, first_byte);
            }
        }
        group.finish();
    }

    /// Bench `id`: `target` answering `body`, timed from sending the request to its first or
    /// its last body byte (the whole answer is read either way).
    fn time(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        id: &str,
        target: &Target,
        body: &Bytes,
        first_byte: bool,
    ) {
        let runtime = &self.runtime;
        let mut connection = runtime
            .block_on(Connection::open(target.addr))
            .expect("connect");
        group.bench_function(id, |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let timing: Timing = runtime
                        .block_on(connection.post(target.path, target.keys.pick(0), body))
                        .expect("request");
                    elapsed += if first_byte {
                        timing.first_byte
                    } else {
                        timing.total
                    };
                    black_box(timing);
                }
                elapsed
            });
        });
    }
}
