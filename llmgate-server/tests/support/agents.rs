//! What the end-to-end tests of coding agents (Claude Code, Codex CLI) share: where the npm
//! package puts an agent's binary, what is missing to run it, and fake upstreams of both
//! families that answer "hi there".

use std::path::{Path, PathBuf};
use std::process::Command;

use llmgate_testkit::{FakeUpstream, Reply, anthropic, openai};

/// The agent's binary as `npm ci` in `agent-tests/` installs it (`claude`, `codex`).
pub fn agent_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("agent-tests/node_modules/.bin")
        .join(name)
}

/// What is missing to run the agent `name` here, if anything.
pub fn missing_prerequisite(name: &str) -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        return Some("`node` is not on PATH".to_owned());
    }
    if !agent_bin(name).is_file() {
        return Some("agent-tests/node_modules is missing (cd agent-tests && npm ci)".to_owned());
    }
    None
}

/// Both fakes answer every request with "hi there", whole or streamed, in their own protocol.
pub fn answer_hi(compat: &FakeUpstream, claude: &FakeUpstream) {
    compat.respond_with(|request| {
        if request.json()["stream"] == true {
            Reply::sse(&openai::text_chunks(
                "up-model",
                &["hi ", "there"],
                Some((400, 2)),
            ))
        } else {
            Reply::json(200, openai::completion("up-model", "hi there", 400, 2))
        }
    });
    claude.respond_with(|request| {
        if request.json()["stream"] == true {
            anthropic::sse(&anthropic::text_events(
                "claude-up",
                &["hi ", "there"],
                400,
                2,
            ))
        } else {
            Reply::json(200, anthropic::message("claude-up", "hi there", 400, 2))
        }
    });
}
