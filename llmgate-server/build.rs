//! Links the release `llmgate` binary with the code its start-up runs placed together.
//!
//! An idle gateway's memory is mostly the executable's code: the kernel maps a page fault's
//! whole 64 KiB neighbourhood, so code run once at start-up (argument parsing, the config,
//! migrations, the pool) spread across the binary keeps most of it resident. Listing those
//! functions for the linker (`startup-order.txt`, written by `.ci/startup-order`) packs them
//! into a few hundred pages. A stale or empty list only costs memory, never correctness: the
//! linker skips names it does not find.
//!
//! Relative relocations are packed (`-z pack-relative-relocs`) when the build machine's glibc is
//! 2.36 or newer (older ones cannot load such a binary): the dynamic loader reads 12 KiB of
//! them at start-up instead of a megabyte of `.rela.dyn`.
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
    // A binary with packed relocations does not start on a glibc older than 2.36: pack them
    // only when the C library linked against is new enough.
    if build_glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin=llmgate=-Wl,-z,pack-relative-relocs");
    }
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

/// Whether the build machine's GNU libc (what the binary links against when building for the
/// host) is at least `major.minor`, as `getconf GNU_LIBC_VERSION` reports it ("glibc 2.36").
/// Unknown counts as too old.
fn build_glibc_at_least(major: u32, minor: u32) -> bool {
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return false;
    }
    let Ok(output) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut version = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|part| part.parse::<u32>().ok());
    match (version.next().flatten(), version.next().flatten()) {
        (Some(found_major), Some(found_minor)) => (found_major, found_minor) >= (major, minor),
        _ => false,
    }
}
