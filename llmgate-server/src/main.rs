//! `llmgate`: see `llmgate --help`.

fn main() -> std::process::ExitCode {
    llmgate_server::cli::main()
}
