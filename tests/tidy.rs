//! Tidy: the architecture invariants of ARCHITECTURE.md, enforced mechanically.
//!
//! - `protocol/` never touches a socket, a clock, a thread, the filesystem or a global RNG.
//! - `sim/` never touches a socket or the OS clock, and spawns no threads.
//! - Neither iterates a randomly seeded hash map (std HashMap/HashSet are banned outright).
//! - Dependencies point one way: protocol <- sim <- the binary.
//! - Every Rust file opens with a `//!` line saying what it is for.
//! - CI runs the README's test command, which needs nothing but Rust.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Lines of code, without comment lines, so that docs may name what they ban.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

fn assert_absent(dir: &str, banned: &[&str]) {
    let mut hits = Vec::new();
    for file in rust_files(&root().join(dir)) {
        for (line, text) in code_lines(&file) {
            for pattern in banned {
                if text.contains(pattern) {
                    hits.push(format!(
                        "{}:{line}: `{pattern}` in: {}",
                        file.display(),
                        text.trim()
                    ));
                }
            }
        }
    }
    assert!(hits.is_empty(), "banned APIs:\n{}", hits.join("\n"));
}

const CLOCKS_AND_THREADS: &[&str] = &[
    "Instant::now",
    "SystemTime",
    "thread_rng",
    "rand::rng()",
    "std::thread",
    "thread::spawn",
    "HashMap",
    "HashSet",
    "RandomState",
];
const SOCKETS: &[&str] = &[
    "std::net",
    "TcpStream",
    "UdpSocket",
    "TcpListener",
    "tokio",
    "async fn",
];
const FILES: &[&str] = &[
    "std::fs",
    "File::open",
    "File::create",
    "std::env",
    "std::process",
];

#[test]
fn protocol_is_sans_io() {
    let banned: Vec<&str> = CLOCKS_AND_THREADS
        .iter()
        .chain(SOCKETS)
        .chain(FILES)
        .copied()
        .collect();
    assert_absent("protocol/src", &banned);
}

#[test]
fn sim_has_no_sockets_clocks_threads_or_random_hash_maps() {
    let banned: Vec<&str> = CLOCKS_AND_THREADS.iter().chain(SOCKETS).copied().collect();
    assert_absent("sim/src", &banned);
}

#[test]
fn the_tidy_check_can_fail() {
    // Proves the scanner sees code: this very file names a banned API outside a comment.
    let me = root().join("tests/tidy.rs");
    assert!(
        code_lines(&me)
            .iter()
            .any(|(_, l)| l.contains("\"HashMap\""))
    );
}

#[test]
fn clippy_bans_the_same_apis() {
    let clippy = std::fs::read_to_string(root().join("clippy.toml")).unwrap();
    for api in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::spawn",
        "std::collections::HashMap",
        "std::collections::HashSet",
    ] {
        assert!(clippy.contains(api), "clippy.toml does not ban {api}");
    }
}

/// The async runtime lives in the live adapter only, and the live adapter drives the protocol
/// crate only: it never reaches into the simulator.
#[test]
fn tokio_stays_in_the_live_adapter_which_uses_protocol_only() {
    for file in rust_files(&root().join("src"))
        .into_iter()
        .chain(rust_files(&root().join("sim/src")))
        .chain(rust_files(&root().join("protocol/src")))
    {
        let live = file.starts_with(root().join("src/live"));
        for (line, text) in code_lines(&file) {
            assert!(
                live || !text.contains("tokio"),
                "{}:{line}: tokio outside src/live/",
                file.display()
            );
            assert!(
                !live || !text.contains("prsm_sim"),
                "{}:{line}: the live adapter uses the protocol crate only",
                file.display()
            );
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    let deps = |manifest: &str| {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        let start = text.find("[dependencies]").unwrap();
        let rest = &text[start + "[dependencies]".len()..];
        let end = rest.find("\n[").unwrap_or(rest.len());
        rest[..end]
            .lines()
            .filter_map(|l| l.split(['=', '.']).next())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let protocol = deps("protocol/Cargo.toml");
    assert!(
        protocol
            .iter()
            .all(|d| ["rand_chacha", "rand_core", "serde"].contains(&d.as_str())),
        "{protocol:?}"
    );
    let sim = deps("sim/Cargo.toml");
    assert!(
        !sim.iter()
            .any(|d| d == "prsm" || d.contains("tokio") || d.contains("rayon")),
        "{sim:?}"
    );
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let mut missing = Vec::new();
    for dir in ["protocol/src", "sim/src", "src", "tests", "benches"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.starts_with("//!") {
                missing.push(file.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` first line: {missing:?}"
    );
}

/// The README's test command: the first command in the code block after "Run the tests".
fn readme_test_command() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = &readme[readme
        .find("Run the tests")
        .expect("README says how to run the tests")..];
    let block = &after[after.find("```sh\n").expect("a sh code block") + 6..];
    block.lines().next().unwrap().trim().to_owned()
}

#[test]
fn ci_runs_the_readme_test_command_which_needs_only_rust() {
    let command = readme_test_command();
    // A fresh machine has cargo and its built-in subcommands, not cargo-nextest.
    assert_eq!(command, "cargo test --workspace");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == command), "{ci}");
    assert!(
        !ci.contains("nextest"),
        "CI must not need more than the README asks for:\n{ci}"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("Requires Rust 1.89 or newer; nothing else"),
        "the requirement line"
    );
}
