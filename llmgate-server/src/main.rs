//! `llmgate`: see `llmgate --help`.

/// With the `mimalloc` feature: threads that free what another thread allocated do not
/// queue on that thread's arena lock, as they do with glibc's allocator under load; the
/// default build keeps the system allocator for its smaller idle footprint.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmgate_server::cli::main()
}
