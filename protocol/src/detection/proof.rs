//! Provable misbehaviour: two conflicting statements signed by one peer, checkable by anyone.
//!
//! A node's identity key signs what it answers ([`NodeKeys`]). Signatures are simulated as in
//! PBFT (a keyed 64-bit hash under the signer's key; every party can verify, each signs only with
//! its own key, so a Byzantine node can sign any lie of its own but never forge another's); the
//! live adapter replaces them with ed25519. A proof is two statements for the same slot with
//! different values: an honest node never signs two.

use crate::NodeId;
use crate::pbft::Roster;
use crate::pbft::message::{Keys, Sig, Signer, mix, statement_content};
use serde::{Deserialize, Serialize};

/// The identity keys of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKeys {
    pub seed: u64,
}

/// The content a worker signs for a task result: the query and the result's digest.
pub fn result_content(query: u64, digest: u64) -> u64 {
    mix(mix(0x7265_7375_6c74, query), digest)
}

impl NodeKeys {
    fn key(self, node: NodeId) -> u64 {
        mix(self.seed, 0x4e4f_4445_0000_0000 | u64::from(node.0))
    }

    pub fn sign(self, node: NodeId, content: u64) -> u64 {
        mix(self.key(node), content)
    }

    pub fn verify(self, node: NodeId, content: u64, sig: u64) -> bool {
        self.sign(node, content) == sig
    }
}

/// What a node needs to check PBFT proofs: the replica keys and which node hosts each replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PbftIdentity {
    pub keys: Keys,
    pub roster: std::sync::Arc<Roster>,
}

/// A PBFT statement kind in a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PbftPhase {
    PrePrepare,
    Prepare,
    Commit,
}

/// Two conflicting signed statements by one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proof {
    /// Two results for the same query with different digests, each `(digest, signature)`.
    Results {
        accused: NodeId,
        query: u64,
        a: (u64, u64),
        b: (u64, u64),
    },
    /// Two statements of one PBFT replica for the same view, sequence number and phase with
    /// different digests (an equivocating primary, a double vote).
    Pbft {
        accused: NodeId,
        replica: u32,
        phase: PbftPhase,
        view: u64,
        seq: u64,
        a: (u64, u64),
        b: (u64, u64),
    },
}

/// Bytes of a proof on the wire (two 64-byte signatures, two 32-byte digests, the slot).
pub const PROOF_BYTES: usize = 2 * 64 + 2 * 32 + 24;

impl Proof {
    pub fn accused(&self) -> NodeId {
        match *self {
            Proof::Results { accused, .. } | Proof::Pbft { accused, .. } => accused,
        }
    }

    /// Every kind [`Proof::kind`] returns.
    pub const KINDS: [&'static str; 2] = ["conflicting_results", "equivocation"];

    pub fn kind(&self) -> &'static str {
        match self {
            Proof::Results { .. } => "conflicting_results",
            Proof::Pbft { .. } => "equivocation",
        }
    }

    /// The same proof whichever statement comes first (so a proof is deduplicated once).
    pub fn canonical(mut self) -> Proof {
        match &mut self {
            Proof::Results { a, b, .. } | Proof::Pbft { a, b, .. } => {
                if a > b {
                    std::mem::swap(a, b);
                }
            }
        }
        self
    }

    /// Whether both statements verify under the accused's key and conflict. A PBFT proof also
    /// needs the accused to host the replica.
    pub fn verify(&self, keys: NodeKeys, pbft: Option<&PbftIdentity>) -> bool {
        match *self {
            Proof::Results {
                accused,
                query,
                a,
                b,
            } => {
                a.0 != b.0
                    && keys.verify(accused, result_content(query, a.0), a.1)
                    && keys.verify(accused, result_content(query, b.0), b.1)
            }
            Proof::Pbft {
                accused,
                replica,
                phase,
                view,
                seq,
                a,
                b,
            } => {
                let Some(id) = pbft else {
                    return false;
                };
                let hosts = id.roster.hosts.get(replica as usize);
                if !hosts.is_some_and(|h| h.contains(&accused)) || a.0 == b.0 {
                    return false;
                }
                let signer = Signer::Replica(replica);
                [a, b].iter().all(|&(digest, sig)| {
                    id.keys.verify(
                        signer,
                        statement_content(phase, view, seq, digest, replica),
                        Sig(sig),
                    )
                })
            }
        }
    }
}
