//! Frames, handshake and sessions: each rule has a test that fails when the rule breaks, and two
//! property tests feed arbitrary and bit-flipped bytes through every entry point.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::live::keys::Keypair;

fn kp(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

fn roster_of(keys: &[&Keypair]) -> Vec<PublicKey> {
    let mut roster: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
    roster.sort();
    roster
}

/// The single frame in `bytes`, through a reader.
fn one_frame(bytes: &[u8]) -> (u8, Vec<u8>) {
    let mut reader = FrameReader::new();
    reader.push(bytes);
    let frame = reader
        .next_frame()
        .expect("a frame")
        .expect("valid framing");
    assert!(reader.next_frame().is_none());
    assert_eq!(reader.finish(), None);
    frame
}

/// A full in-memory handshake with the given nonces: (dialer session, listener session).
fn handshake(d: &Keypair, l: &Keypair, d_nonce: [u8; 32], l_nonce: [u8; 32]) -> (Session, Session) {
    let roster = roster_of(&[d, l]);
    let (dial_state, hello) = dial_with_nonce(d, l.public(), d_nonce);
    let mut accept_state = accept_with_nonce(l, l_nonce);
    let (kind, body) = one_frame(&hello);
    let Ok(AcceptStep::Reply(welcome)) = accept_state.on_frame(kind, &body, &roster) else {
        panic!("hello refused");
    };
    let (kind, body) = one_frame(&welcome);
    let (dialer, proof) = dial_state.on_frame(kind, &body).expect("welcome refused");
    let (kind, body) = one_frame(&proof);
    let Ok(AcceptStep::Done(listener)) = accept_state.on_frame(kind, &body, &roster) else {
        panic!("proof refused");
    };
    (dialer, listener)
}

fn pair() -> (Session, Session) {
    handshake(&kp(1), &kp(2), [10; 32], [20; 32])
}

/// Opens a sealed frame (as bytes on the wire) on `session`.
fn open_bytes(session: &mut Session, frame: &[u8]) -> Result<Vec<u8>, Reject> {
    let (kind, body) = one_frame(frame);
    session.open(kind, &body)
}

#[test]
fn handshake_then_frames_both_ways() {
    let (d, l) = (kp(1), kp(2));
    let (mut dialer, mut listener) = handshake(&d, &l, [10; 32], [20; 32]);
    assert_eq!(dialer.peer(), l.public());
    assert_eq!(listener.peer(), d.public());
    for i in 0..5u8 {
        let to_l = dialer.seal(&[i; 200]);
        assert_eq!(open_bytes(&mut listener, &to_l), Ok(vec![i; 200]));
        let to_d = listener.seal(&[i, i]);
        assert_eq!(open_bytes(&mut dialer, &to_d), Ok(vec![i, i]));
    }
    assert_eq!(open_bytes(&mut listener, &dialer.seal(&[])), Ok(vec![]));
    // Typed helpers.
    let msg = (7u64, String::from("hi"), vec![1u32, 2, 3]);
    let frame = listener.seal_msg(&msg).expect("encodes");
    let (kind, body) = one_frame(&frame);
    assert_eq!(
        dialer.open_msg::<(u64, String, Vec<u32>)>(kind, &body),
        Ok(msg)
    );
}

#[test]
fn byte_layout_is_as_documented() {
    let (d, l) = (kp(1), kp(2));
    let (_, hello) = dial_with_nonce(&d, l.public(), [10; 32]);
    let mut expected = vec![VERSION, HELLO, 0, 0, 0, 64];
    expected.extend_from_slice(&d.public().0);
    expected.extend_from_slice(&[10; 32]);
    assert_eq!(hello, expected);

    let mut accept_state = accept_with_nonce(&l, [20; 32]);
    let roster = roster_of(&[&d, &l]);
    let Ok(AcceptStep::Reply(welcome)) = accept_state.on_frame(HELLO, &hello[6..], &roster) else {
        panic!("hello refused");
    };
    assert_eq!(welcome[..6], [VERSION, WELCOME, 0, 0, 0, 128]);
    assert_eq!(welcome[6..38], l.public().0);
    assert_eq!(welcome[38..70], [20; 32]);
    let mut t = b"prsm/handshake/1".to_vec();
    for part in [d.public().0, l.public().0, [10; 32], [20; 32]] {
        t.extend_from_slice(&part);
    }
    assert_eq!(welcome[70..], l.sign(&t));

    let (mut dialer, listener) = handshake(&d, &l, [10; 32], [20; 32]);
    let _ = dialer.seal(b"first");
    let frame = dialer.seal(b"abc");
    assert_eq!(frame[..6], [VERSION, DATA, 0, 0, 0, 8 + 3 + 64]);
    assert_eq!(frame[6..14], 2u64.to_be_bytes());
    assert_eq!(&frame[14..17], b"abc");
    let mut m = b"prsm/frame/1".to_vec();
    m.extend_from_slice(&[10; 32]);
    m.extend_from_slice(&[20; 32]);
    m.push(0);
    m.extend_from_slice(&2u64.to_be_bytes());
    m.extend_from_slice(b"abc");
    assert_eq!(frame[17..], d.sign(&m));
    drop(listener);
}

#[test]
fn tampered_payload_is_forged() {
    let (mut dialer, mut listener) = pair();
    let frame = dialer.seal(b"pay 10 to alice");
    let mut bad = frame.clone();
    bad[6 + 8 + 4] ^= 0x01;
    assert_eq!(open_bytes(&mut listener, &bad), Err(Reject::Forged));
    // The forgery did not advance the counter: the genuine frame still opens.
    assert_eq!(
        open_bytes(&mut listener, &frame),
        Ok(b"pay 10 to alice".to_vec())
    );
}

#[test]
fn tampered_signature_is_forged() {
    let (mut dialer, mut listener) = pair();
    let frame = dialer.seal(b"x");
    for at in [frame.len() - 64, frame.len() - 33, frame.len() - 1] {
        let mut bad = frame.clone();
        bad[at] ^= 0x80;
        assert_eq!(
            open_bytes(&mut listener, &bad),
            Err(Reject::Forged),
            "byte {at}"
        );
    }
}

#[test]
fn tampered_counter_is_forged() {
    let (mut dialer, mut listener) = pair();
    let mut frame = dialer.seal(b"x");
    frame[6 + 7] = 9; // counter 1 -> 9
    assert_eq!(open_bytes(&mut listener, &frame), Err(Reject::Forged));
}

#[test]
fn replayed_and_old_frames_are_replayed_forged_old_ones_forged() {
    let (mut dialer, mut listener) = pair();
    let first = dialer.seal(b"one");
    let second = dialer.seal(b"two");
    let third = dialer.seal(b"three");
    assert_eq!(open_bytes(&mut listener, &first), Ok(b"one".to_vec()));
    assert_eq!(open_bytes(&mut listener, &first), Err(Reject::Replayed));
    // A gap is accepted (counter 3 after 1), after which counter 2 is old.
    assert_eq!(open_bytes(&mut listener, &third), Ok(b"three".to_vec()));
    assert_eq!(open_bytes(&mut listener, &second), Err(Reject::Replayed));
    assert_eq!(open_bytes(&mut listener, &third), Err(Reject::Replayed));
    // A forgery with an old counter is a forgery, not a replay.
    let mut forged = first.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(open_bytes(&mut listener, &forged), Err(Reject::Forged));
    // The next genuine frame (counter 4) is still accepted.
    assert_eq!(
        open_bytes(&mut listener, &dialer.seal(b"four")),
        Ok(b"four".to_vec())
    );
}

#[test]
fn frame_of_another_session_between_the_same_keys_is_forged() {
    let (d, l) = (kp(1), kp(2));
    let (mut dialer_a, _listener_a) = handshake(&d, &l, [10; 32], [20; 32]);
    let (_dialer_b, mut listener_b) = handshake(&d, &l, [11; 32], [21; 32]);
    // Same keys, same counter (1), same direction: only the session id differs.
    let frame = dialer_a.seal(b"hello");
    assert_eq!(open_bytes(&mut listener_b, &frame), Err(Reject::Forged));
    // Only the listener's nonce differs: still another session.
    let (_dialer_c, mut listener_c) = handshake(&d, &l, [10; 32], [22; 32]);
    assert_eq!(open_bytes(&mut listener_c, &frame), Err(Reject::Forged));
}

#[test]
fn frame_reflected_to_its_sender_is_forged() {
    // A node connected to itself: same key at both ends, so only the direction byte tells the
    // two directions apart.
    let me = kp(5);
    let (mut dialer, mut listener) = handshake(&me, &me, [1; 32], [2; 32]);
    let frame = dialer.seal(b"ping");
    assert_eq!(open_bytes(&mut dialer, &frame), Err(Reject::Forged));
    assert_eq!(open_bytes(&mut listener, &frame), Ok(b"ping".to_vec()));
    let back = listener.seal(b"pong");
    assert_eq!(open_bytes(&mut listener, &back), Err(Reject::Forged));
    assert_eq!(open_bytes(&mut dialer, &back), Ok(b"pong".to_vec()));
}

#[test]
fn hello_from_a_key_outside_the_roster_is_unknown_key() {
    let (stranger, l, member) = (kp(9), kp(2), kp(1));
    let roster = roster_of(&[&member, &l]);
    let (_, hello) = dial_with_nonce(&stranger, l.public(), [1; 32]);
    let mut accept_state = accept_with_nonce(&l, [2; 32]);
    let (kind, body) = one_frame(&hello);
    assert_eq!(
        accept_state.on_frame(kind, &body, &roster).err(),
        Some(Reject::UnknownKey)
    );
    // The handshake is over: even a member's HELLO is now refused.
    let (_, hello) = dial_with_nonce(&member, l.public(), [1; 32]);
    let (kind, body) = one_frame(&hello);
    assert_eq!(
        accept_state.on_frame(kind, &body, &roster).err(),
        Some(Reject::Handshake)
    );
}

/// The WELCOME `l` sends in answer to `hello`.
fn welcome_from(l: &Keypair, hello: &[u8], roster: &[PublicKey]) -> (u8, Vec<u8>) {
    let mut accept_state = accept_with_nonce(l, [3; 32]);
    let (kind, body) = one_frame(hello);
    let Ok(AcceptStep::Reply(welcome)) = accept_state.on_frame(kind, &body, roster) else {
        panic!("hello refused");
    };
    one_frame(&welcome)
}

#[test]
fn welcome_from_another_key_than_expected_is_unknown_key() {
    let (d, expected, impostor) = (kp(1), kp(2), kp(3));
    let roster = roster_of(&[&d, &expected, &impostor]);
    let (dial_state, hello) = dial_with_nonce(&d, expected.public(), [1; 32]);
    // The impostor is a roster member and signs correctly, but is not who D dialed.
    let (kind, body) = welcome_from(&impostor, &hello, &roster);
    assert_eq!(
        dial_state.on_frame(kind, &body).err(),
        Some(Reject::UnknownKey)
    );
}

#[test]
fn welcome_with_a_bad_signature_is_forged() {
    let (d, l) = (kp(1), kp(2));
    let roster = roster_of(&[&d, &l]);
    let (dial_state, hello) = dial_with_nonce(&d, l.public(), [1; 32]);
    let (kind, mut body) = welcome_from(&l, &hello, &roster);
    let last = body.len() - 1;
    body[last] ^= 1;
    assert_eq!(dial_state.on_frame(kind, &body).err(), Some(Reject::Forged));

    // A genuine WELCOME of an earlier connection (other dialer nonce) is forged here.
    let (_, old_hello) = dial_with_nonce(&d, l.public(), [7; 32]);
    let (kind, old_welcome) = welcome_from(&l, &old_hello, &roster);
    let (dial_state, _) = dial_with_nonce(&d, l.public(), [1; 32]);
    assert_eq!(
        dial_state.on_frame(kind, &old_welcome).err(),
        Some(Reject::Forged)
    );
}

#[test]
fn proof_with_a_bad_signature_or_from_another_connection_is_forged() {
    let (d, l) = (kp(1), kp(2));
    let roster = roster_of(&[&d, &l]);
    let run = |l_nonce: [u8; 32], tamper: bool| -> (AcceptState, Vec<u8>) {
        let (dial_state, hello) = dial_with_nonce(&d, l.public(), [1; 32]);
        let mut accept_state = accept_with_nonce(&l, l_nonce);
        let Ok(AcceptStep::Reply(welcome)) = accept_state.on_frame(HELLO, &hello[6..], &roster)
        else {
            panic!("hello refused");
        };
        let (_, proof) = dial_state
            .on_frame(WELCOME, &welcome[6..])
            .expect("welcome");
        let mut body = proof[6..].to_vec();
        if tamper {
            body[0] ^= 1;
        }
        (accept_state, body)
    };
    let (mut accept_state, body) = run([2; 32], true);
    assert_eq!(
        accept_state.on_frame(PROOF, &body, &roster).err(),
        Some(Reject::Forged)
    );
    // The PROOF of an earlier connection (other listener nonce) does not prove this one.
    let (_, old_proof) = run([3; 32], false);
    let (mut accept_state, _) = run([2; 32], false);
    assert_eq!(
        accept_state.on_frame(PROOF, &old_proof, &roster).err(),
        Some(Reject::Forged)
    );
}

#[test]
fn wrong_kind_or_undecodable_body_during_the_handshake() {
    let (d, l) = (kp(1), kp(2));
    let roster = roster_of(&[&d, &l]);
    let (_, hello) = dial_with_nonce(&d, l.public(), [1; 32]);
    let hello_body = hello[6..].to_vec();

    // Listener waiting for HELLO.
    for kind in [WELCOME, PROOF, DATA, 0, 200] {
        let mut a = accept_with_nonce(&l, [2; 32]);
        assert_eq!(
            a.on_frame(kind, &hello_body, &roster).err(),
            Some(Reject::Handshake)
        );
    }
    let mut long = hello_body.clone();
    long.push(0);
    for body in [&hello_body[..63], &long[..], &[][..]] {
        let mut a = accept_with_nonce(&l, [2; 32]);
        assert_eq!(
            a.on_frame(HELLO, body, &roster).err(),
            Some(Reject::Garbage)
        );
    }

    // Listener waiting for PROOF.
    let mut a = accept_with_nonce(&l, [2; 32]);
    assert!(matches!(
        a.on_frame(HELLO, &hello_body, &roster),
        Ok(AcceptStep::Reply(_))
    ));
    assert_eq!(
        a.on_frame(HELLO, &hello_body, &roster).err(),
        Some(Reject::Handshake)
    );
    let mut a = accept_with_nonce(&l, [2; 32]);
    assert!(a.on_frame(HELLO, &hello_body, &roster).is_ok());
    assert_eq!(
        a.on_frame(PROOF, &[0; 63], &roster).err(),
        Some(Reject::Garbage)
    );

    // Dialer waiting for WELCOME.
    let (kind, welcome) = welcome_from(&l, &hello, &roster);
    assert_eq!(kind, WELCOME);
    let (s, _) = dial_with_nonce(&d, l.public(), [1; 32]);
    assert_eq!(s.on_frame(HELLO, &welcome).err(), Some(Reject::Handshake));
    let (s, _) = dial_with_nonce(&d, l.public(), [1; 32]);
    assert_eq!(
        s.on_frame(WELCOME, &welcome[..127]).err(),
        Some(Reject::Garbage)
    );
    let mut long = welcome.clone();
    long.push(0);
    let (s, _) = dial_with_nonce(&d, l.public(), [1; 32]);
    assert_eq!(s.on_frame(WELCOME, &long).err(), Some(Reject::Garbage));
}

#[test]
fn data_body_too_short_is_truncated_other_kinds_garbage() {
    let (mut dialer, mut listener) = pair();
    let (kind, body) = one_frame(&dialer.seal(b""));
    assert_eq!(body.len(), 72);
    assert_eq!(listener.open(kind, &body[..71]), Err(Reject::Truncated));
    assert_eq!(listener.open(kind, &[]), Err(Reject::Truncated));
    assert_eq!(listener.open(HELLO, &body), Err(Reject::Garbage));
    assert_eq!(listener.open(kind, &body), Ok(vec![]));
}

#[test]
fn open_msg_refuses_undecodable_or_trailing_bytes() {
    let (mut dialer, mut listener) = pair();
    // A u32 varint that never ends.
    let (kind, body) = one_frame(&dialer.seal(&[0xff; 6]));
    assert_eq!(listener.open_msg::<u32>(kind, &body), Err(Reject::Garbage));
    // A valid u32 followed by a stray byte.
    let (kind, body) = one_frame(&dialer.seal(&[5, 0]));
    assert_eq!(listener.open_msg::<u32>(kind, &body), Err(Reject::Garbage));
    let (kind, body) = one_frame(&dialer.seal(&[5]));
    assert_eq!(listener.open_msg::<u32>(kind, &body), Ok(5));
}

#[test]
fn seal_msg_refuses_an_oversized_payload_without_using_a_counter() {
    let (mut dialer, mut listener) = pair();
    // postcard writes a Vec<u8> as a varint length (3 bytes here) and the bytes.
    assert!(dialer.seal_msg(&vec![0u8; PAYLOAD_MAX]).is_err());
    let (kind, body) = one_frame(&dialer.seal_msg(&vec![0u8; PAYLOAD_MAX - 3]).expect("fits"));
    assert_eq!(body.len(), BODY_MAX);
    assert_eq!(body[..8], 1u64.to_be_bytes());
    assert_eq!(
        listener.open_msg::<Vec<u8>>(kind, &body).map(|v| v.len()),
        Ok(PAYLOAD_MAX - 3)
    );
}

#[test]
fn wrong_version_is_rejected_once_then_the_stream_is_dead() {
    let (mut dialer, _) = pair();
    let mut frame = dialer.seal(b"x");
    let good = frame.clone();
    frame[0] = 2;
    let mut reader = FrameReader::new();
    reader.push(&frame);
    reader.push(&good);
    assert_eq!(reader.next_frame(), Some(Err(Reject::Version)));
    assert_eq!(reader.next_frame(), None);
    reader.push(&good);
    assert_eq!(reader.next_frame(), None);
    assert_eq!(reader.buffered(), 0);
    // The reject was already reported: the end of the stream adds nothing.
    assert_eq!(reader.finish(), None);
}

#[test]
fn huge_length_is_oversized_without_allocating() {
    for len in [u32::MAX, (BODY_MAX + 1) as u32] {
        let mut reader = FrameReader::new();
        let mut header = vec![VERSION, DATA];
        header.extend_from_slice(&len.to_be_bytes());
        reader.push(&header);
        reader.push(&[0; 100]);
        assert_eq!(reader.next_frame(), Some(Err(Reject::Oversized)));
        assert!(
            reader.buf.capacity() < 1024,
            "buffered {}",
            reader.buf.capacity()
        );
        assert_eq!(reader.next_frame(), None);
    }
    // BODY_MAX itself is fine.
    let mut reader = FrameReader::new();
    reader.push(&encode_frame(DATA, &vec![7; BODY_MAX]));
    assert_eq!(reader.next_frame(), Some(Ok((DATA, vec![7; BODY_MAX]))));
}

#[test]
fn header_is_checked_before_the_body_arrives() {
    let mut reader = FrameReader::new();
    reader.push(&[VERSION, DATA, 0xff, 0xff]);
    assert_eq!(reader.next_frame(), None);
    reader.push(&[0xff, 0xff]);
    assert_eq!(reader.next_frame(), Some(Err(Reject::Oversized)));
}

#[test]
fn frames_split_into_single_bytes_reassemble() {
    let (mut dialer, mut listener) = pair();
    let mut stream = Vec::new();
    let payloads: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![9; 300]];
    for p in &payloads {
        stream.extend_from_slice(&dialer.seal(p));
    }
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    for byte in &stream {
        reader.push(std::slice::from_ref(byte));
        while let Some(frame) = reader.next_frame() {
            let (kind, body) = frame.expect("valid");
            got.push(listener.open(kind, &body).expect("genuine"));
        }
    }
    assert_eq!(got, payloads);
    assert_eq!(reader.finish(), None);
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn stream_ending_inside_a_frame_is_truncated() {
    let frame = encode_frame(DATA, &[1, 2, 3]);
    for cut in 1..frame.len() {
        let mut reader = FrameReader::new();
        reader.push(&frame[..cut]);
        assert_eq!(reader.next_frame(), None, "cut at {cut}");
        assert_eq!(reader.finish(), Some(Reject::Truncated), "cut at {cut}");
        reader.push(&frame[cut..]);
        assert_eq!(reader.next_frame(), Some(Ok((DATA, vec![1, 2, 3]))));
        assert_eq!(reader.finish(), None);
    }
    assert_eq!(FrameReader::new().finish(), None);
}

#[test]
fn reject_names_are_distinct_and_displayed() {
    let names: Vec<&str> = Reject::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "version",
            "oversized",
            "truncated",
            "garbage",
            "forged",
            "replayed",
            "unknown_key",
            "handshake"
        ]
    );
    for r in Reject::ALL {
        assert_eq!(r.to_string(), r.name());
    }
    assert!(Reject::ALL.windows(2).all(|w| w[0] < w[1]));
}

/// Everything a connection can be fed: framing, both handshake roles and an open session.
/// Returns the number of payloads a session accepted (which must be none for forged input).
fn feed_everything(stream: &[u8], chunk: usize, extra: &[(u8, Vec<u8>)]) -> usize {
    let (d, l) = (kp(1), kp(2));
    let roster = roster_of(&[&d, &l]);
    let mut frames: Vec<(u8, Vec<u8>)> = extra.to_vec();
    let mut reader = FrameReader::new();
    for piece in stream.chunks(chunk.max(1)) {
        reader.push(piece);
        while let Some(frame) = reader.next_frame() {
            match frame {
                Ok(frame) => frames.push(frame),
                Err(reject) => assert!(matches!(reject, Reject::Version | Reject::Oversized)),
            }
        }
        assert!(reader.buffered() <= stream.len());
    }
    let _ = reader.finish();

    let (mut dialer, mut listener) = pair();
    let mut accepted = 0;
    for (kind, body) in &frames {
        let (dial_state, _) = dial_with_nonce(&d, l.public(), [1; 32]);
        assert!(dial_state.on_frame(*kind, body).is_err());
        let mut fresh = accept_with_nonce(&l, [2; 32]);
        // A random HELLO would need a roster key: never.
        assert!(fresh.on_frame(*kind, body, &roster).is_err());
        let mut waiting = accept_with_nonce(&l, [2; 32]);
        let (_, hello) = dial_with_nonce(&d, l.public(), [1; 32]);
        assert!(waiting.on_frame(HELLO, &hello[6..], &roster).is_ok());
        assert!(waiting.on_frame(*kind, body, &roster).is_err());
        accepted += usize::from(dialer.open(*kind, body).is_ok());
        accepted += usize::from(listener.open(*kind, body).is_ok());
        let _ = listener.open_msg::<(u64, String)>(*kind, body);
    }
    accepted
}

/// Bodies of the sizes the decoders expect, with arbitrary content.
fn body_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let kind = prop_oneof![
        Just(HELLO),
        Just(WELCOME),
        Just(PROOF),
        Just(DATA),
        any::<u8>()
    ];
    let len = prop_oneof![Just(64usize), Just(128), Just(72), Just(80), 0usize..300];
    (kind, len)
        .prop_flat_map(|(kind, len)| (Just(kind), proptest::collection::vec(any::<u8>(), len)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary bytes, well-framed arbitrary bodies with noise spliced in, and arbitrary bodies
    /// handed straight to the state machines: no panic, every failure a `Reject`, nothing opens.
    #[test]
    fn arbitrary_input_is_rejected_without_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        bodies in proptest::collection::vec(body_strategy(), 0..4),
        splice in any::<Index>(),
        chunk in 1usize..80,
        raw_first in any::<bool>(),
    ) {
        let mut stream: Vec<u8> = Vec::new();
        for (kind, body) in &bodies {
            stream.extend_from_slice(&encode_frame(*kind, body));
        }
        if raw_first {
            stream = noise.clone();
        } else {
            let at = splice.index(stream.len() + 1);
            stream.splice(at..at, noise.iter().copied());
        }
        prop_assert_eq!(feed_everything(&stream, chunk, &bodies), 0);
    }

    /// One flipped bit anywhere in a sealed frame: rejected somewhere (framing, signature, or a
    /// truncated stream), never accepted.
    #[test]
    fn one_flipped_bit_is_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        bit in any::<Index>(),
        earlier in 0usize..3,
    ) {
        let (mut dialer, mut listener) = pair();
        for _ in 0..earlier {
            let frame = dialer.seal(b"earlier");
            prop_assert!(open_bytes(&mut listener, &frame).is_ok());
        }
        let mut frame = dialer.seal(&payload);
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        let mut reader = FrameReader::new();
        reader.push(&frame);
        let mut rejected = false;
        while let Some(next) = reader.next_frame() {
            match next {
                Ok((kind, body)) => {
                    let opened = listener.open(kind, &body);
                    prop_assert!(opened.is_err(), "accepted {:?}", opened);
                    rejected = true;
                }
                Err(_) => rejected = true,
            }
        }
        rejected |= reader.finish().is_some();
        prop_assert!(rejected);
    }
}

/// The reader keeps only what it has not returned yet: a stream that never drains (a frame and
/// the start of the next in every read) does not grow its buffer.
#[test]
fn the_reader_forgets_the_frames_it_returned() {
    let mut reader = FrameReader::new();
    let frame = encode_frame(DATA, &[7u8; 100]);
    let split = 3;
    reader.push(&frame[..split]);
    for _ in 0..1_000 {
        // The rest of the pending frame, then the start of the next one.
        let mut read = frame[split..].to_vec();
        read.extend_from_slice(&frame[..split]);
        reader.push(&read);
        let got = reader.next_frame().expect("a whole frame").expect("valid");
        assert_eq!(got, (DATA, vec![7u8; 100]));
        assert!(reader.next_frame().is_none());
        assert_eq!(reader.buffered(), split);
        assert!(
            reader.buf.len() <= frame.len() + split,
            "the reader holds {} bytes for {} pending",
            reader.buf.len(),
            reader.buffered()
        );
    }
}
