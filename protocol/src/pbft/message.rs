//! PBFT messages, digests and simulated signatures.
//!
//! Signatures are simulated: a signature is a keyed 64-bit hash of the signed content under the
//! signer's key. What the simulator needs from real signatures holds: a message whose signature
//! does not match its claimed signer is rejected, and verification has a cost (charged by the
//! simulator per signature, see [`PbftMessage::signatures`]). Wire sizes count a 64-byte
//! signature, as ed25519 has. Byzantine replicas sign whatever they like with their own key and
//! never forge another's; the live adapter replaces this with ed25519.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::{NodeId, Wire};

/// Bytes of one signature on the wire (ed25519).
pub const SIG_BYTES: usize = 64;
/// Bytes of a message's fixed header (type, view, sequence number, sender).
const HEADER_BYTES: usize = 32;
/// Bytes of a digest on the wire (SHA-256).
const DIGEST_BYTES: usize = 32;

/// A 64-bit stand-in for a SHA-256 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub u64);

/// The digest of the empty batch that fills a gap in a new view.
pub const NULL_DIGEST: Digest = Digest(0x6e75_6c6c_6e75_6c6c);

/// A simulated signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sig(pub u64);

/// A stable 64-bit mixing step (splitmix64's finalizer over `h ^ x * golden`).
pub fn mix(h: u64, x: u64) -> u64 {
    let mut z = h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a message's fields: a multiply-rotate step per field and one full mix at the end
/// (every simulated signature check runs this, so it is kept cheap).
fn fold(values: &[u64]) -> u64 {
    let h = values.iter().fold(0x7072_736d_7062_6674_u64, |h, &v| {
        (h ^ v).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29)
    });
    mix(h, values.len() as u64)
}

/// Who signs: a replica (by index in the roster) or a client (by node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signer {
    Replica(u32),
    Client(NodeId),
}

/// The keys of one run. Every party can verify; each signs only with its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub seed: u64,
}

impl Keys {
    fn key(self, signer: Signer) -> u64 {
        match signer {
            Signer::Replica(r) => mix(self.seed, 0x5245_5000_0000_0000 | u64::from(r)),
            Signer::Client(c) => mix(self.seed, 0x434c_0000_0000_0000 | u64::from(c.0)),
        }
    }

    pub fn sign(self, signer: Signer, content: u64) -> Sig {
        Sig(mix(self.key(signer), content))
    }

    pub fn verify(self, signer: Signer, content: u64, sig: Sig) -> bool {
        self.sign(signer, content) == sig
    }
}

// Content tags, so a signature on one message type never verifies as another.
const TAG_REQUEST: u64 = 1;
const TAG_PRE_PREPARE: u64 = 2;
const TAG_PREPARE: u64 = 3;
const TAG_COMMIT: u64 = 4;
const TAG_REPLY: u64 = 5;
const TAG_CHECKPOINT: u64 = 6;
const TAG_VIEW_CHANGE: u64 = 7;
const TAG_NEW_VIEW: u64 = 8;
const TAG_STATUS: u64 = 9;

/// A client's request: an operation (an AI-task decision) with the client's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    pub client: NodeId,
    pub timestamp: u64,
    pub op: u64,
    /// Payload bytes carried with the operation.
    pub size: u32,
    pub sig: Sig,
}

impl Request {
    pub fn content(&self) -> u64 {
        fold(&[
            TAG_REQUEST,
            u64::from(self.client.0),
            self.timestamp,
            self.op,
            u64::from(self.size),
        ])
    }

    pub fn digest(&self) -> Digest {
        Digest(self.content())
    }

    fn wire(&self) -> usize {
        HEADER_BYTES + 8 + self.size as usize + SIG_BYTES
    }
}

/// The digest of a batch of requests; the empty batch is the null request.
pub fn batch_digest(batch: &[Request]) -> Digest {
    if batch.is_empty() {
        return NULL_DIGEST;
    }
    Digest(
        batch
            .iter()
            .fold(0x0062_6174_6368, |h, r| mix(h, r.content())),
    )
}

/// The primary assigns sequence number `seq` to a batch in `view`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrePrepare {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub batch: Vec<Request>,
    pub sig: Sig,
}

impl PrePrepare {
    pub fn content(&self) -> u64 {
        fold(&[TAG_PRE_PREPARE, self.view, self.seq, self.digest.0])
    }

    fn wire(&self) -> usize {
        HEADER_BYTES
            + DIGEST_BYTES
            + SIG_BYTES
            + self.batch.iter().map(Request::wire).sum::<usize>()
    }
}

/// The signed content of a pre-prepare header or a vote, as a proof of equivocation carries it
/// (see [`crate::detection::Proof`]).
pub fn statement_content(
    phase: crate::detection::PbftPhase,
    view: u64,
    seq: u64,
    digest: u64,
    replica: u32,
) -> u64 {
    use crate::detection::PbftPhase;
    match phase {
        PbftPhase::PrePrepare => fold(&[TAG_PRE_PREPARE, view, seq, digest]),
        PbftPhase::Prepare => fold(&[TAG_PREPARE, view, seq, digest, u64::from(replica)]),
        PbftPhase::Commit => fold(&[TAG_COMMIT, view, seq, digest, u64::from(replica)]),
    }
}

/// A prepare or commit vote of `replica` for `digest` at (`view`, `seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub replica: u32,
    pub sig: Sig,
}

/// Which phase a vote belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Prepare,
    Commit,
}

impl Vote {
    pub fn content(&self, phase: Phase) -> u64 {
        let tag = match phase {
            Phase::Prepare => TAG_PREPARE,
            Phase::Commit => TAG_COMMIT,
        };
        fold(&[
            tag,
            self.view,
            self.seq,
            self.digest.0,
            u64::from(self.replica),
        ])
    }

    fn wire() -> usize {
        HEADER_BYTES + DIGEST_BYTES + SIG_BYTES
    }
}

/// A replica's reply to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply {
    pub view: u64,
    pub timestamp: u64,
    pub client: NodeId,
    pub replica: u32,
    pub result: u64,
    pub sig: Sig,
}

impl Reply {
    pub fn content(&self) -> u64 {
        fold(&[
            TAG_REPLY,
            self.view,
            self.timestamp,
            u64::from(self.client.0),
            u64::from(self.replica),
            self.result,
        ])
    }
}

/// A replica's state digest after executing sequence number `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub state: u64,
    pub replica: u32,
    pub sig: Sig,
}

impl Checkpoint {
    pub fn content(&self) -> u64 {
        fold(&[
            TAG_CHECKPOINT,
            self.seq,
            self.state,
            u64::from(self.replica),
        ])
    }
}

/// A pre-prepare with 2f matching prepares from distinct backups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreparedCert {
    pub pre_prepare: PrePrepare,
    pub prepares: Vec<Vote>,
}

/// A replica's request to move to `view`, with its stable checkpoint and prepared certificates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewChange {
    pub view: u64,
    pub stable_seq: u64,
    pub stable_state: u64,
    /// 2f+1 checkpoint messages proving `stable_seq` (empty for the initial state, seq 0).
    pub proof: Vec<Checkpoint>,
    pub prepared: Vec<PreparedCert>,
    pub replica: u32,
    pub sig: Sig,
}

impl ViewChange {
    pub fn content(&self) -> u64 {
        let mut h = fold(&[
            TAG_VIEW_CHANGE,
            self.view,
            self.stable_seq,
            self.stable_state,
            u64::from(self.replica),
        ]);
        for c in &self.proof {
            h = mix(h, c.sig.0);
        }
        for p in &self.prepared {
            h = mix(h, p.pre_prepare.content());
            for v in &p.prepares {
                h = mix(h, v.sig.0);
            }
        }
        h
    }

    fn signatures(&self) -> u32 {
        1 + self.proof.len() as u32
            + self
                .prepared
                .iter()
                .map(|p| 1 + p.prepares.len() as u32)
                .sum::<u32>()
    }

    /// Certificates are encoded compactly, as a real encoding would: the votes of a prepared
    /// certificate share the pre-prepare's view, sequence number and digest, and the
    /// checkpoint messages of the proof share its sequence number and state, so each vote costs
    /// a replica index and a signature ([`CERT_VOTE_BYTES`]). The size is therefore
    /// `O(P * n)` for `P` prepared slots above the stable checkpoint (at most the log window):
    /// see [`view_change_size_max`].
    pub fn wire(&self) -> usize {
        HEADER_BYTES
            + 16
            + SIG_BYTES
            + self.proof.len() * CERT_VOTE_BYTES
            + self
                .prepared
                .iter()
                .map(|p| p.pre_prepare.wire() + p.prepares.len() * CERT_VOTE_BYTES)
                .sum::<usize>()
    }

    /// The digest a NEW-VIEW names this view change by.
    pub fn digest(&self) -> Digest {
        Digest(mix(self.content(), self.sig.0))
    }
}

/// Bytes of one vote inside a certificate: the voter's index and its signature.
pub const CERT_VOTE_BYTES: usize = 4 + SIG_BYTES;

/// The largest VIEW-CHANGE a replica of a committee of `n` can send with log window `window`
/// and batches of `batch_bytes` request bytes: a full proof and a prepared certificate for every
/// slot of the window.
pub fn view_change_size_max(n: u32, window: u64, batch_bytes: usize) -> usize {
    let f = (n.saturating_sub(1) / 3) as usize;
    let quorum = 2 * f + 1;
    let cert = HEADER_BYTES + DIGEST_BYTES + SIG_BYTES + batch_bytes + 2 * f * CERT_VOTE_BYTES;
    HEADER_BYTES + 16 + SIG_BYTES + quorum * CERT_VOTE_BYTES + window as usize * cert
}

/// A view change named by its sender and digest (an element of the NEW-VIEW's set V).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewChangeRef {
    pub replica: u32,
    pub digest: Digest,
}

/// The new primary's signed pre-prepare header for one sequence number of the new view: the
/// batch is the one the view changes determine (an element of the NEW-VIEW's set X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    pub seq: u64,
    pub digest: Digest,
    /// The new primary's signature on the pre-prepare `(view, seq, digest)`.
    pub sig: Sig,
}

/// The new primary's announcement of `view`, as in Castro and Liskov's BFT library (TOCS 2002,
/// section 4.4 and the implementation in section 5): it names the 2f+1 view changes it is based
/// on by digest (set V) and signs a pre-prepare header for every sequence number between the
/// stable checkpoint and the highest prepared one (set X). It carries neither the view changes
/// nor the batches: a backup recomputes the batches from the view changes, which it holds
/// (they were multicast) or fetches from the sender with [`FetchViewChanges`]. Its size is
/// `O(n + L)` instead of the `O(n^2 L)` of carrying every certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewView {
    pub view: u64,
    pub view_changes: Vec<ViewChangeRef>,
    pub proposals: Vec<Proposal>,
    pub sig: Sig,
}

impl NewView {
    pub fn content(&self) -> u64 {
        let mut h = fold(&[TAG_NEW_VIEW, self.view]);
        for v in &self.view_changes {
            h = mix(h, mix(u64::from(v.replica), v.digest.0));
        }
        for p in &self.proposals {
            h = mix(h, fold(&[p.seq, p.digest.0, p.sig.0]));
        }
        h
    }

    fn wire(&self) -> usize {
        HEADER_BYTES
            + SIG_BYTES
            + self.view_changes.len() * (4 + DIGEST_BYTES)
            + self.proposals.len() * (8 + DIGEST_BYTES + SIG_BYTES)
    }
}

/// A replica that holds a NEW-VIEW but lacks some of the view changes it names asks the sender
/// for them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FetchViewChanges {
    pub view: u64,
    pub replicas: Vec<u32>,
    pub replica: u32,
}

/// One client's row of the replicated reply table: its last executed timestamp and result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableEntry {
    pub client: NodeId,
    pub timestamp: u64,
    pub result: u64,
}

/// The digest of a reply table.
pub fn table_digest(table: &[TableEntry]) -> u64 {
    table.iter().fold(0x0074_6162_6c65, |h, e| {
        mix(h, fold(&[u64::from(e.client.0), e.timestamp, e.result]))
    })
}

/// A checkpoint's digest: the running state digest and the reply table, which together are the
/// replicated state a lagging replica must adopt.
pub fn checkpoint_digest(state: u64, table: &[TableEntry]) -> u64 {
    mix(state, table_digest(table))
}

/// A lagging replica asks for the state at stable checkpoint `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FetchState {
    pub seq: u64,
    pub replica: u32,
}

/// The state at checkpoint `seq`; the receiver checks it against the checkpoint's certified
/// digest, so it needs no signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateReply {
    pub seq: u64,
    pub state: u64,
    pub table: Vec<TableEntry>,
}

/// A replica that is behind says where it is, so peers retransmit what it lacks (the status
/// messages of Castro and Liskov's implementation, TOCS 2002 section 5). While changing views
/// it also says which replicas' view changes for its view it holds, so a peer re-sends its own
/// only to replicas that lack it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    pub view: u64,
    pub active: bool,
    pub last_executed: u64,
    /// Bitmap over replica indices: view changes for `view` the sender holds (empty if active).
    pub view_changes: Vec<u64>,
    pub replica: u32,
    pub sig: Sig,
}

impl Status {
    pub fn content(&self) -> u64 {
        let h = fold(&[
            TAG_STATUS,
            self.view,
            u64::from(self.active),
            self.last_executed,
            u64::from(self.replica),
        ]);
        self.view_changes.iter().fold(h, |h, &w| mix(h, w))
    }

    /// Whether the sender holds replica `r`'s view change for its view.
    pub fn holds_view_change(&self, r: u32) -> bool {
        self.view_changes
            .get(r as usize / 64)
            .is_some_and(|w| w & (1 << (r % 64)) != 0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PbftMessage {
    Request(Request),
    /// Boxed, like the view-change messages: they are rare and large, while votes are most of
    /// the traffic and should stay small in the event queue.
    PrePrepare(Box<PrePrepare>),
    Prepare(Vote),
    Commit(Vote),
    Reply(Reply),
    Checkpoint(Checkpoint),
    /// Shared: a view change is multicast to every replica and kept by each, unchanged.
    ViewChange(Arc<ViewChange>),
    NewView(Box<NewView>),
    FetchState(FetchState),
    StateReply(Box<StateReply>),
    Status(Box<Status>),
    FetchViewChanges(Box<FetchViewChanges>),
}

/// Message kinds, for per-type counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Request,
    PrePrepare,
    Prepare,
    Commit,
    Reply,
    Checkpoint,
    ViewChange,
    NewView,
    FetchState,
    StateReply,
    Status,
    FetchViewChanges,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Request,
        Kind::PrePrepare,
        Kind::Prepare,
        Kind::Commit,
        Kind::Reply,
        Kind::Checkpoint,
        Kind::ViewChange,
        Kind::NewView,
        Kind::FetchState,
        Kind::StateReply,
        Kind::Status,
        Kind::FetchViewChanges,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::PrePrepare => "pre_prepare",
            Kind::Prepare => "prepare",
            Kind::Commit => "commit",
            Kind::Reply => "reply",
            Kind::Checkpoint => "checkpoint",
            Kind::ViewChange => "view_change",
            Kind::NewView => "new_view",
            Kind::FetchState => "fetch_state",
            Kind::StateReply => "state_reply",
            Kind::Status => "status",
            Kind::FetchViewChanges => "fetch_view_changes",
        }
    }
}

impl PbftMessage {
    pub fn kind(&self) -> Kind {
        match self {
            PbftMessage::Request(_) => Kind::Request,
            PbftMessage::PrePrepare(_) => Kind::PrePrepare,
            PbftMessage::Prepare(_) => Kind::Prepare,
            PbftMessage::Commit(_) => Kind::Commit,
            PbftMessage::Reply(_) => Kind::Reply,
            PbftMessage::Checkpoint(_) => Kind::Checkpoint,
            PbftMessage::ViewChange(_) => Kind::ViewChange,
            PbftMessage::NewView(_) => Kind::NewView,
            PbftMessage::FetchState(_) => Kind::FetchState,
            PbftMessage::StateReply(_) => Kind::StateReply,
            PbftMessage::Status(_) => Kind::Status,
            PbftMessage::FetchViewChanges(_) => Kind::FetchViewChanges,
        }
    }

    /// How many signatures a receiver verifies to accept this message (the simulator charges a
    /// verification cost for each).
    pub fn signatures(&self) -> u32 {
        match self {
            PbftMessage::FetchState(_)
            | PbftMessage::StateReply(_)
            | PbftMessage::FetchViewChanges(_) => 0,
            PbftMessage::Request(_)
            | PbftMessage::Prepare(_)
            | PbftMessage::Commit(_)
            | PbftMessage::Reply(_)
            | PbftMessage::Checkpoint(_)
            | PbftMessage::Status(_) => 1,
            PbftMessage::PrePrepare(p) => 1 + p.batch.len() as u32,
            PbftMessage::ViewChange(v) => v.signatures(),
            PbftMessage::NewView(nv) => 1 + nv.proposals.len() as u32,
        }
    }
}

impl Wire for PbftMessage {
    fn wire_size(&self) -> usize {
        match self {
            PbftMessage::Request(r) => r.wire(),
            PbftMessage::PrePrepare(p) => p.wire(),
            PbftMessage::Prepare(_) | PbftMessage::Commit(_) => Vote::wire(),
            PbftMessage::Reply(_) => HEADER_BYTES + 16 + SIG_BYTES,
            PbftMessage::Checkpoint(_) => HEADER_BYTES + DIGEST_BYTES + SIG_BYTES,
            PbftMessage::ViewChange(v) => v.wire(),
            PbftMessage::FetchState(_) => HEADER_BYTES,
            PbftMessage::Status(st) => HEADER_BYTES + 16 + SIG_BYTES + st.view_changes.len() * 8,
            PbftMessage::StateReply(r) => HEADER_BYTES + 8 + r.table.len() * 24,
            PbftMessage::NewView(nv) => nv.wire(),
            PbftMessage::FetchViewChanges(f) => HEADER_BYTES + 8 + f.replicas.len() * 4,
        }
    }
}
