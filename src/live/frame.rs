//! The live adapter's wire format: framing, the authenticated handshake, and signed, replay-proof
//! data frames, as sans-IO state machines (bytes in, bytes out; the transport owns the sockets).
//!
//! # Framing
//!
//! A connection is a byte stream of frames, each
//!
//! ```text
//! offset 0  version  u8       = VERSION (1)
//! offset 1  kind     u8       HELLO 1, WELCOME 2, PROOF 3, DATA 4
//! offset 2  len      u32 BE   body length, at most BODY_MAX (1 MiB + 128)
//! offset 6  body     len bytes
//! ```
//!
//! [`FrameReader`] cuts a stream into `(kind, body)`. A wrong version byte or a length above
//! [`BODY_MAX`] cannot be resynchronised past: it is reported once and the stream is dead. The
//! length is checked before any body byte is buffered, so a hostile length allocates nothing.
//!
//! # Handshake
//!
//! Dialer D (knows the key it expects at the listener), listener L (knows the roster):
//!
//! ```text
//! D -> L  HELLO    body = D.key[32] || D.nonce[32]                        (64 bytes)
//! L -> D  WELCOME  body = L.key[32] || L.nonce[32] || sig_L(transcript)[64] (128 bytes)
//! D -> L  PROOF    body = sig_D(transcript)[64]                           (64 bytes)
//!
//! transcript = "prsm/handshake/1" || D.key || L.key || D.nonce || L.nonce
//! ```
//!
//! The bodies are the postcard encodings of [`Hello`], [`Welcome`] and [`Proof`]; postcard
//! writes fixed-size byte arrays as their raw bytes, so the layout above is exact. L refuses a
//! HELLO from a key outside the roster (`UnknownKey`); D refuses a WELCOME from any key but the
//! expected one (`UnknownKey`) or with a bad signature (`Forged`); L refuses a bad PROOF
//! (`Forged`). Each side contributes a fresh 32-byte nonce from the OS, so each connection has
//! its own session id `D.nonce || L.nonce`, and both signatures cover both keys and both nonces:
//! neither a handshake message nor a data frame of one connection is valid on another.
//!
//! # Data frames
//!
//! ```text
//! DATA  body = counter u64 BE || payload || sig[64]
//! sig = sender signs "prsm/frame/1" || session_id[64] || direction u8 || counter u64 BE || payload
//! ```
//!
//! `direction` is 0 for dialer→listener and 1 for listener→dialer (so a frame cannot be reflected
//! back to its sender, even on a connection of a node to itself). Each direction's counter starts
//! at 1 and grows by 1 per frame; the receiver accepts only a counter above the last one it
//! accepted (a gap is tolerated). All fields before the payload have a fixed size, and the two
//! signing domains (`prsm/handshake/1`, `prsm/frame/1`) differ, so signed messages are
//! unambiguous. Payloads of the typed helpers are postcard encodings.
//!
//! # Why postcard
//!
//! postcard is a serde codec with a stable, documented wire format (a written specification, with
//! varint integer and length encoding), compact, of `no_std` heritage (it never trusts a length to
//! pre-allocate, and decoding untrusted input returns errors rather than panicking), and actively
//! maintained at 1.x. bincode 1 is frozen and its successor line was abandoned, and JSON is large
//! and slow for this purpose.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::{KeyError, Keypair, PublicKey, random_32, verify_with};
use ed25519_dalek::VerifyingKey;

/// The only wire version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before each frame's body: version, kind, length.
pub const HEADER_LEN: usize = 6;
/// The largest body accepted: the protocol's 1 MiB message limit plus room for the counter and
/// signature.
pub const BODY_MAX: usize = (1 << 20) + 128;
/// Bytes a DATA body adds around its payload: counter and signature.
pub const DATA_OVERHEAD: usize = 8 + 64;
/// The largest payload [`Session::seal`] can put in a frame the peer accepts.
pub const PAYLOAD_MAX: usize = BODY_MAX - DATA_OVERHEAD;

/// Frame kind: the dialer's hello.
pub const HELLO: u8 = 1;
/// Frame kind: the listener's answer.
pub const WELCOME: u8 = 2;
/// Frame kind: the dialer's signature, ending the handshake.
pub const PROOF: u8 = 3;
/// Frame kind: a signed payload inside a session.
pub const DATA: u8 = 4;

/// Signing domain of the handshake transcript.
const HANDSHAKE_DOMAIN: &[u8] = b"prsm/handshake/1";
/// Signing domain of data frames.
const FRAME_DOMAIN: &[u8] = b"prsm/frame/1";

/// Why a frame, handshake message or stream was refused. Any reject ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reject {
    /// A frame header with a version other than [`VERSION`].
    Version,
    /// A frame header announcing a body above [`BODY_MAX`].
    Oversized,
    /// The stream ended inside a frame, or a DATA body is too short to hold counter and signature.
    Truncated,
    /// A body that does not decode (or has bytes left over), or a kind unknown at this point.
    Garbage,
    /// A signature that does not verify.
    Forged,
    /// A correctly signed DATA frame whose counter is not above the last accepted one.
    Replayed,
    /// A handshake from a key outside the roster, or not the key the dialer expected.
    UnknownKey,
    /// A frame of the wrong kind during the handshake, or a handshake that already ended.
    Handshake,
}

impl Reject {
    /// Every reject, in order (for counters and metrics).
    pub const ALL: [Reject; 8] = [
        Reject::Version,
        Reject::Oversized,
        Reject::Truncated,
        Reject::Garbage,
        Reject::Forged,
        Reject::Replayed,
        Reject::UnknownKey,
        Reject::Handshake,
    ];

    /// A stable snake_case name (for logs and metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            Reject::Version => "version",
            Reject::Oversized => "oversized",
            Reject::Truncated => "truncated",
            Reject::Garbage => "garbage",
            Reject::Forged => "forged",
            Reject::Replayed => "replayed",
            Reject::UnknownKey => "unknown_key",
            Reject::Handshake => "handshake",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Reject {}

/// One frame: header and body. A body above `u32::MAX` bytes cannot be framed; its header then
/// announces `u32::MAX`, which the peer refuses as [`Reject::Oversized`].
pub fn encode_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.push(VERSION);
    frame.push(kind);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Cuts a byte stream into frames. Sans-IO: [`push`](Self::push) what the socket read, then call
/// [`next_frame`](Self::next_frame) until it returns `None`.
///
/// Buffering is bounded by the frame format: a header is validated as soon as its 6 bytes are
/// there, before its body is buffered, and the reader keeps only the frame in progress, at most
/// `HEADER_LEN + BODY_MAX` bytes, beyond what the caller pushed and has not drained yet (draining
/// after every push, as above, keeps it under that bound plus one push).
#[derive(Debug, Default)]
pub struct FrameReader {
    /// Received bytes; `buf[start..]` are not yet returned as frames.
    buf: Vec<u8>,
    start: usize,
    /// Set after a `Version` or `Oversized` reject: the stream cannot be resynchronised.
    dead: bool,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes read from the stream. Ignored once the stream is dead.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.dead {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame as `(kind, body)`, `None` if more bytes are needed, or the reject
    /// that kills the stream (returned once; `None` forever after, and the caller closes).
    pub fn next_frame(&mut self) -> Option<Result<(u8, Vec<u8>), Reject>> {
        if self.dead {
            return None;
        }
        let pending = self.buf.get(self.start..)?;
        let (header, rest) = pending.split_first_chunk::<HEADER_LEN>()?;
        let [version, kind, l0, l1, l2, l3] = *header;
        if version != VERSION {
            return Some(Err(self.kill(Reject::Version)));
        }
        let len = usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).unwrap_or(usize::MAX);
        if len > BODY_MAX {
            return Some(Err(self.kill(Reject::Oversized)));
        }
        let body = rest.get(..len)?.to_vec();
        self.start += HEADER_LEN + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Some(Ok((kind, body)))
    }

    /// At the end of the stream: `Some(Truncated)` if it stopped inside a frame.
    pub fn finish(&self) -> Option<Reject> {
        (!self.dead && self.buffered() > 0).then_some(Reject::Truncated)
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Marks the stream dead and frees its buffer.
    fn kill(&mut self, reject: Reject) -> Reject {
        self.dead = true;
        self.buf = Vec::new();
        self.start = 0;
        reject
    }
}

/// Serde for a 64-byte array as a fixed-size tuple (serde's derives stop at 32): postcard writes
/// it as the 64 raw bytes, like the 32-byte arrays.
mod bytes64 {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        struct Bytes64;
        impl<'de> Visitor<'de> for Bytes64 {
            type Value = [u8; 64];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_tuple(64, Bytes64)
    }
}

/// HELLO body: the dialer's key and nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub key: [u8; 32],
    pub nonce: [u8; 32],
}

/// WELCOME body: the listener's key, nonce and signature of the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub key: [u8; 32],
    pub nonce: [u8; 32],
    #[serde(with = "bytes64")]
    pub sig: [u8; 64],
}

/// PROOF body: the dialer's signature of the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    #[serde(with = "bytes64")]
    pub sig: [u8; 64],
}

/// A handshake message as a frame. Encoding these fixed-size structs into a `Vec` cannot fail.
fn handshake_frame<T: Serialize>(kind: u8, msg: &T) -> Vec<u8> {
    encode_frame(kind, &postcard::to_stdvec(msg).unwrap_or_default())
}

/// Decodes a whole body: undecodable or with bytes left over is `Garbage`.
fn decode_exact<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        _ => Err(Reject::Garbage),
    }
}

/// The bytes both sides sign during the handshake.
fn transcript(
    d_key: &[u8; 32],
    l_key: &[u8; 32],
    d_nonce: &[u8; 32],
    l_nonce: &[u8; 32],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(HANDSHAKE_DOMAIN.len() + 4 * 32);
    t.extend_from_slice(HANDSHAKE_DOMAIN);
    for part in [d_key, l_key, d_nonce, l_nonce] {
        t.extend_from_slice(part);
    }
    t
}

/// Starts a handshake as the dialer, with a fresh nonce from the OS: the state and the HELLO
/// frame to send.
pub fn dial(me: &Keypair, expect: PublicKey) -> Result<(DialState, Vec<u8>), KeyError> {
    Ok(dial_with_nonce(me, expect, random_32()?))
}

/// [`dial`] with a caller-supplied nonce (deterministic tests; a reused nonce lets frames of one
/// connection be replayed on another, so live code uses [`dial`]).
pub fn dial_with_nonce(me: &Keypair, expect: PublicKey, nonce: [u8; 32]) -> (DialState, Vec<u8>) {
    let hello = Hello {
        key: me.public().0,
        nonce,
    };
    let frame = handshake_frame(HELLO, &hello);
    let state = DialState {
        me: me.clone(),
        expect,
        nonce,
    };
    (state, frame)
}

/// The dialer after sending HELLO, waiting for WELCOME.
#[derive(Debug)]
pub struct DialState {
    me: Keypair,
    expect: PublicKey,
    nonce: [u8; 32],
}

impl DialState {
    /// Takes the listener's WELCOME: the session and the PROOF frame to send, or why not.
    pub fn on_frame(self, kind: u8, body: &[u8]) -> Result<(Session, Vec<u8>), Reject> {
        if kind != WELCOME {
            return Err(Reject::Handshake);
        }
        let welcome: Welcome = decode_exact(body)?;
        if welcome.key != self.expect.0 {
            return Err(Reject::UnknownKey);
        }
        let peer_key = self.expect.verifying_key().ok_or(Reject::Forged)?;
        let me = self.me.public().0;
        let t = transcript(&me, &welcome.key, &self.nonce, &welcome.nonce);
        if !verify_with(&peer_key, &t, &welcome.sig) {
            return Err(Reject::Forged);
        }
        let proof = handshake_frame(
            PROOF,
            &Proof {
                sig: self.me.sign(&t),
            },
        );
        let session = Session::new(
            self.me,
            self.expect,
            peer_key,
            self.nonce,
            welcome.nonce,
            true,
        );
        Ok((session, proof))
    }
}

/// Starts a handshake as the listener, with a fresh nonce from the OS.
pub fn accept(me: &Keypair) -> Result<AcceptState, KeyError> {
    Ok(accept_with_nonce(me, random_32()?))
}

/// [`accept`] with a caller-supplied nonce (deterministic tests only; see [`dial_with_nonce`]).
pub fn accept_with_nonce(me: &Keypair, nonce: [u8; 32]) -> AcceptState {
    AcceptState {
        me: me.clone(),
        phase: AcceptPhase::AwaitHello { nonce },
    }
}

/// The listener's handshake: waits for HELLO, answers WELCOME, waits for PROOF.
#[derive(Debug)]
pub struct AcceptState {
    me: Keypair,
    phase: AcceptPhase,
}

#[derive(Debug)]
enum AcceptPhase {
    AwaitHello {
        nonce: [u8; 32],
    },
    AwaitProof(Box<AwaitProof>),
    /// Finished, successfully or not: every further frame is a `Handshake` reject.
    Over,
}

/// The listener after sending WELCOME.
#[derive(Debug)]
struct AwaitProof {
    peer: PublicKey,
    peer_key: VerifyingKey,
    transcript: Vec<u8>,
    d_nonce: [u8; 32],
    l_nonce: [u8; 32],
}

/// What the listener does after a handshake frame.
// `Done` is large, but the value is built once per connection and consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AcceptStep {
    /// Send this WELCOME frame and wait for the PROOF.
    Reply(Vec<u8>),
    /// The handshake is complete.
    Done(Session),
}

impl AcceptState {
    /// Takes the next handshake frame; `roster` is sorted ascending (as
    /// [`read_roster`](super::keys::read_roster) returns it). After a reject or `Done`, every
    /// call is a `Handshake` reject.
    pub fn on_frame(
        &mut self,
        kind: u8,
        body: &[u8],
        roster: &[PublicKey],
    ) -> Result<AcceptStep, Reject> {
        match std::mem::replace(&mut self.phase, AcceptPhase::Over) {
            AcceptPhase::AwaitHello { nonce } => {
                if kind != HELLO {
                    return Err(Reject::Handshake);
                }
                let hello: Hello = decode_exact(body)?;
                let peer = PublicKey(hello.key);
                if roster.binary_search(&peer).is_err() {
                    return Err(Reject::UnknownKey);
                }
                // A roster entry that is not a curve point can never prove anything.
                let peer_key = peer.verifying_key().ok_or(Reject::Forged)?;
                let my_key = self.me.public().0;
                let t = transcript(&hello.key, &my_key, &hello.nonce, &nonce);
                let welcome = Welcome {
                    key: my_key,
                    nonce,
                    sig: self.me.sign(&t),
                };
                self.phase = AcceptPhase::AwaitProof(Box::new(AwaitProof {
                    peer,
                    peer_key,
                    transcript: t,
                    d_nonce: hello.nonce,
                    l_nonce: nonce,
                }));
                Ok(AcceptStep::Reply(handshake_frame(WELCOME, &welcome)))
            }
            AcceptPhase::AwaitProof(waiting) => {
                if kind != PROOF {
                    return Err(Reject::Handshake);
                }
                let proof: Proof = decode_exact(body)?;
                if !verify_with(&waiting.peer_key, &waiting.transcript, &proof.sig) {
                    return Err(Reject::Forged);
                }
                Ok(AcceptStep::Done(Session::new(
                    self.me.clone(),
                    waiting.peer,
                    waiting.peer_key,
                    waiting.d_nonce,
                    waiting.l_nonce,
                    false,
                )))
            }
            AcceptPhase::Over => Err(Reject::Handshake),
        }
    }
}

/// An authenticated connection after the handshake: seals outgoing and opens incoming DATA
/// frames, each direction with its own counter.
#[derive(Debug)]
pub struct Session {
    me: Keypair,
    peer: PublicKey,
    peer_key: VerifyingKey,
    /// `D.nonce || L.nonce`.
    id: [u8; 64],
    /// Direction byte of frames this side sends (0 dialer→listener, 1 listener→dialer).
    send_direction: u8,
    /// Counter of the next frame sealed.
    next_send: u64,
    /// Counter of the last frame opened (0 before the first).
    last_received: u64,
}

impl Session {
    fn new(
        me: Keypair,
        peer: PublicKey,
        peer_key: VerifyingKey,
        d_nonce: [u8; 32],
        l_nonce: [u8; 32],
        dialer: bool,
    ) -> Session {
        let mut id = [0u8; 64];
        let (d, l) = id.split_at_mut(32);
        d.copy_from_slice(&d_nonce);
        l.copy_from_slice(&l_nonce);
        Session {
            me,
            peer,
            peer_key,
            id,
            send_direction: if dialer { 0 } else { 1 },
            next_send: 1,
            last_received: 0,
        }
    }

    /// The authenticated key at the other end.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// The bytes a DATA frame's signature covers.
    fn signed_message(&self, direction: u8, counter: u64, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(FRAME_DOMAIN.len() + 64 + 1 + 8 + payload.len());
        m.extend_from_slice(FRAME_DOMAIN);
        m.extend_from_slice(&self.id);
        m.push(direction);
        m.extend_from_slice(&counter.to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    /// A DATA frame carrying `payload` (at most [`PAYLOAD_MAX`] bytes, or the peer refuses the
    /// frame as `Oversized`).
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let counter = self.next_send;
        self.next_send = self.next_send.saturating_add(1);
        let sig = self
            .me
            .sign(&self.signed_message(self.send_direction, counter, payload));
        let mut body = Vec::with_capacity(DATA_OVERHEAD + payload.len());
        body.extend_from_slice(&counter.to_be_bytes());
        body.extend_from_slice(payload);
        body.extend_from_slice(&sig);
        encode_frame(DATA, &body)
    }

    /// The payload of a DATA frame from the peer. The signature is checked before the counter,
    /// so a forgery is `Forged` whatever its counter and only a genuine frame seen again (or
    /// older than the last accepted) is `Replayed`.
    pub fn open(&mut self, kind: u8, body: &[u8]) -> Result<Vec<u8>, Reject> {
        if kind != DATA {
            return Err(Reject::Garbage);
        }
        let (counter, rest) = body.split_first_chunk::<8>().ok_or(Reject::Truncated)?;
        let (payload, sig) = rest.split_last_chunk::<64>().ok_or(Reject::Truncated)?;
        let counter = u64::from_be_bytes(*counter);
        let message = self.signed_message(1 - self.send_direction, counter, payload);
        if !verify_with(&self.peer_key, &message, sig) {
            return Err(Reject::Forged);
        }
        if counter <= self.last_received {
            return Err(Reject::Replayed);
        }
        self.last_received = counter;
        Ok(payload.to_vec())
    }

    /// [`seal`](Self::seal) of the postcard encoding of `msg`. An encoding above
    /// [`PAYLOAD_MAX`] is refused (`SerializeBufferFull`) without using a counter.
    pub fn seal_msg<T: Serialize>(&mut self, msg: &T) -> Result<Vec<u8>, postcard::Error> {
        let payload = postcard::to_stdvec(msg)?;
        if payload.len() > PAYLOAD_MAX {
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(self.seal(&payload))
    }

    /// [`open`](Self::open) and decode the payload as postcard; undecodable or with bytes left
    /// over is `Garbage`.
    pub fn open_msg<T: DeserializeOwned>(&mut self, kind: u8, body: &[u8]) -> Result<T, Reject> {
        decode_exact(&self.open(kind, body)?)
    }
}

#[cfg(test)]
mod tests;
