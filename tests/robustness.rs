//! Robustness: no scenario text, however mangled, panics the loader; every rejection has a place.

use prsm_sim::load_str;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const SEED_TEXT: &str = include_str!("../scenarios/quickstart.yaml");

/// Mutations: delete a span, duplicate a line, swap two lines, insert a hostile token.
fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let pick = |rng: &mut ChaCha8Rng, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    const TOKENS: &[&str] = &[
        "-1",
        "1e999",
        "\"\"",
        "[",
        "]",
        "{",
        "}",
        ":",
        "- ",
        "&a",
        "*a",
        "!!binary",
        "999999999999999999999",
        "\t",
        "~",
        "null",
        "NaN",
        "-5ms",
        "150%",
        "random:1000%",
        "region:",
        "1.5.6s",
        "<<: *a",
        "\u{0}",
    ];
    for _ in 0..1 + pick(rng, 3) {
        let i = pick(rng, lines.len());
        match pick(rng, 4) {
            0 => {
                let line = &mut lines[i];
                let cut = pick(rng, line.len() + 1);
                let end = (cut + pick(rng, 8)).min(line.len());
                if line.is_char_boundary(cut) && line.is_char_boundary(end) {
                    line.replace_range(cut..end, "");
                }
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            2 => {
                let j = pick(rng, lines.len());
                lines.swap(i, j);
            }
            _ => {
                let token = TOKENS[pick(rng, TOKENS.len())];
                let line = &mut lines[i];
                let at = pick(rng, line.len() + 1);
                if line.is_char_boundary(at) {
                    line.insert_str(at, token);
                }
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mangled_scenarios_never_panic_and_errors_have_places() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..3_000 {
        let text = mutate(SEED_TEXT, &mut rng);
        match load_str(&text) {
            Ok(_) => accepted += 1,
            Err(diagnostics) => {
                rejected += 1;
                assert!(!diagnostics.is_empty());
                for d in &diagnostics {
                    assert!(!d.message.is_empty());
                    let lines = text.lines().count() as u64 + 1;
                    assert!(
                        d.line <= lines,
                        "line {} past the end of the text: {d:?}",
                        d.line
                    );
                }
            }
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "mutations should give both: {accepted} / {rejected}"
    );
}

/// PBFT with adversaries, a twin and faults: mutants that still validate are also run (small ones),
/// so odd but valid settings (a committee of 1, a twin of the primary, windows that never open)
/// cannot panic the model or the checkers.
#[test]
fn mangled_pbft_scenarios_never_panic_when_loaded_or_run() {
    const PBFT_TEXT: &str = "name: fuzz\nseed: 3\nduration: 8s\n\
        nodes:\n  - { count: 4, role: validator }\n  - { count: 1, role: worker }\n  - { count: 2, role: coordinator }\n\
        network: { latency: { uniform: { min: 1ms, max: 20ms } }, loss: 2% }\n\
        protocol:\n  pbft: { checkpoint_interval: 4, batch_size: 2, committee: 4 }\n\
        workload:\n  requests: { every: 100ms, start: 500ms, count: 40 }\n\
        faults:\n  - { at: 2s, partition: { groups: [[0, 1]] } }\n  - { at: 3s, heal: all }\n  - { at: 4s, crash: [2] }\n\
        adversaries:\n  - { nodes: [4], behavior: twin, twin_of: 0 }\n  - { nodes: [3], behavior: slow, delay: 30ms, from: 1s, until: 5s }\n";
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let (mut ran, mut rejected) = (0, 0);
    for _ in 0..1_500 {
        let text = mutate(PBFT_TEXT, &mut rng);
        match load_str(&text) {
            Ok(scenario) => {
                if scenario.node_count() <= 40 && scenario.duration.as_nanos() <= 60_000_000_000 {
                    // Any outcome (a violation, a run limit) is fine; a panic is not.
                    let _ = prsm_sim::run(&scenario, scenario.seed);
                    ran += 1;
                }
            }
            Err(diagnostics) => {
                rejected += 1;
                assert!(!diagnostics.is_empty());
            }
        }
    }
    assert!(ran > 50 && rejected > 50, "{ran} / {rejected}");
}

/// The full node: layers, roles, several workloads, churn from a selector. Mutants that still
/// validate run (small ones), so odd compositions (a role with one layer, PBFT without health,
/// discovery without anyone running it on a role) cannot panic the composed node or its model.
#[test]
fn mangled_layered_scenarios_never_panic_when_loaded_or_run() {
    const LAYERS_TEXT: &str = "name: fuzz\nseed: 4\nduration: 12s\n\
        nodes:\n  - { count: 1, role: bootstrap }\n  - { count: 4, role: validator }\n  - { count: 2, role: coordinator }\n  - { count: 13, role: worker }\n\
        network: { latency: { uniform: { min: 1ms, max: 20ms } }, loss: 1% }\n\
        layers:\n  kademlia: { bootstrap: \"role:bootstrap\", join_spread: 1s }\n  swim: { view_max: 8 }\n  local: { site_size: 5, interval: 2s, ttl: 6s }\n  pbft: { checkpoint_interval: 4 }\n\
        roles:\n  bootstrap: [kademlia, swim]\n  validator: [kademlia, swim, pbft]\n  coordinator: [kademlia, swim, pbft]\n  worker: [kademlia, swim, local]\n\
        workload:\n  requests: { every: 200ms, start: 2s, count: 30 }\n  lookups: { every: 300ms, start: 2s, count: 20 }\n\
        faults:\n  - { at: 3s, crash: [1] }\n  - { at: 4s, churn: { rate: 1, downtime: 2s, until: 8s, nodes: \"role:worker\" } }\n  - { at: 9s, restart: crashed }\n";
    assert!(load_str(LAYERS_TEXT).is_ok(), "the seed text validates");
    let mut rng = ChaCha8Rng::seed_from_u64(91);
    let (mut ran, mut rejected) = (0, 0);
    for _ in 0..1_000 {
        let text = mutate(LAYERS_TEXT, &mut rng);
        match load_str(&text) {
            Ok(scenario) => {
                if scenario.node_count() <= 60 && scenario.duration.as_nanos() <= 60_000_000_000 {
                    let _ = prsm_sim::run(&scenario, scenario.seed);
                    ran += 1;
                }
            }
            Err(diagnostics) => {
                rejected += 1;
                assert!(!diagnostics.is_empty());
            }
        }
    }
    assert!(ran > 50 && rejected > 50, "{ran} / {rejected}");
}

#[test]
fn deep_nesting_and_huge_inputs_are_refused_not_crashed() {
    let deep = format!("name: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(load_str(&deep).is_err());
    let huge = format!("name: x\ndescription: \"{}\"\n", "a".repeat(2 << 20));
    let err = load_str(&huge).unwrap_err();
    assert!(err[0].message.contains("limited to"));
    let billion_laughs = "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n\
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    assert!(load_str(billion_laughs).is_err());
}
