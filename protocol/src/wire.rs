//! What a message costs on the wire. The simulator charges bandwidth and enforces the message size
//! limit with it; the live adapter checks it against the encoded frame.

/// The encoded size of a message, in bytes.
pub trait Wire {
    fn wire_size(&self) -> usize;
}
