//! `llmgate`: see `llmgate --help`.

/// With the `mimalloc` feature (on by default): threads that free what another thread
/// allocated do not queue on that thread's arena lock, as they do with glibc's allocator
/// under load; `--no-default-features` keeps the system allocator, about 1 MiB smaller idle.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmgate_server::cli::main()
}
