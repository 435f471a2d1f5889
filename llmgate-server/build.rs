//! Links the release `llmgate` binary with the code its start-up runs placed together.
//!
//! An idle gateway's memory is mostly the executable's code: the kernel maps a page fault's
//! whole 64 KiB neighbourhood, so code run once at start-up (argument parsing, the config,
//! migrations, the pool) spread across the binary keeps most of it resident. Listing those
//! functions for the linker (`startup-order.txt`, written by `.ci/startup-order`) packs them
//! into a few hundred pages. A stale or empty list only costs memory, never correctness: the
//! linker skips names it does not find.
//!
//! Relative relocations are packed (`-z pack-relative-relocs`, glibc ≥ 2.36): the dynamic
//! loader reads 12 KiB of them at start-up instead of a megabyte of `.rela.dyn`.
//!
//! Only where rustc links with LLD by default (x86-64 Linux, GNU libc, Rust ≥ 1.90); set
//! `LLMGATE_NO_STARTUP_ORDER=1` when linking with another linker there.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=startup-order.txt");
    println!("cargo:rerun-if-env-changed=LLMGATE_NO_STARTUP_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let lld_by_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let release = var("PROFILE") == "release";
    let other_linker = var("CARGO_ENCODED_RUSTFLAGS").contains("link");
    if !lld_by_default || !release || other_linker || !var("LLMGATE_NO_STARTUP_ORDER").is_empty() {
        return;
    }
    println!("cargo:rustc-link-arg-bin=llmgate=-Wl,-z,pack-relative-relocs");
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("startup-order.txt");
    if !list.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=llmgate=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    // Names of another build (another rustc, other features) are expected, not an error.
    println!("cargo:rustc-link-arg-bin=llmgate=-Wl,--no-warn-symbol-ordering");
}
