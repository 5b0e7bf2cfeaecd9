//! Key files and rosters: round trips, each malformed case with its line, refusal to overwrite.

use std::path::{Path, PathBuf};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("prsm-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

fn hex(bytes: &[u8]) -> String {
    hex_encode(bytes)
}

#[test]
fn hex_round_trip_and_case() {
    let k = key(7).public();
    let text = k.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text, text.to_lowercase());
    assert_eq!(PublicKey::from_hex(&text), Ok(k));
    assert_eq!(PublicKey::from_hex(&text.to_uppercase()), Ok(k));
    assert_eq!(hex_encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    assert_eq!(decode_hex_32(&"0f".repeat(32)), Ok([0x0f; 32]));
    assert_eq!(
        decode_hex_32(&"ab".repeat(31)),
        Err(HexError::WrongLength(62))
    );
    assert_eq!(
        decode_hex_32(&format!("{}zz", "ab".repeat(31))),
        Err(HexError::BadHex)
    );
    // Multi-byte characters are not hex and never split a char boundary.
    assert_eq!(decode_hex_32(&"é".repeat(32)), Err(HexError::BadHex));
    assert!(PublicKey::from_hex("12").is_err());
}

#[test]
fn sign_and_verify() {
    let k = key(1);
    let sig = k.sign(b"hello");
    assert!(k.public().verify(b"hello", &sig));
    assert!(!k.public().verify(b"hellp", &sig));
    assert!(!key(2).public().verify(b"hello", &sig));
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(!k.public().verify(b"hello", &bad));
    // Not a curve point: false, no panic. (y = 2 has no x on the curve.)
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert!(PublicKey(not_a_point).verifying_key().is_none());
    assert!(!PublicKey(not_a_point).verify(b"hello", &sig));
}

#[test]
fn generated_keys_differ() {
    let a = Keypair::generate().expect("os random");
    let b = Keypair::generate().expect("os random");
    assert_ne!(a.public(), b.public());
}

#[test]
fn key_file_round_trip() {
    let dir = TempDir::new("round-trip");
    let path = dir.path().join("a.key");
    let k = Keypair::generate().expect("os random");
    write_key_file(&path, &k).expect("write");
    let back = read_key_file(&path).expect("read");
    assert_eq!(back.public(), k.public());
    assert_eq!(back.sign(b"m"), k.sign(b"m"));
    let text = std::fs::read_to_string(&path).expect("text");
    assert!(text.starts_with("# prsm node key (ed25519). Keep this file secret.\nsecret = "));
    assert!(text.contains(&format!("\npublic = {}\n", k.public())));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn key_file_is_never_overwritten() {
    let dir = TempDir::new("overwrite");
    let path = dir.file("a.key", "precious");
    let err = write_key_file(&path, &key(1)).expect_err("must refuse");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&path).expect("text"), "precious");
}

/// The problem and line `read_key_file` reports for a key file with this text.
fn key_file_problem(dir: &TempDir, text: &str) -> (Option<usize>, Problem) {
    let path = dir.file("k.key", text);
    let err = read_key_file(&path).expect_err("malformed");
    let message = err.to_string();
    assert!(message.contains("k.key"), "names the file: {message}");
    let (line, problem) = err.malformed().expect("a malformed-file error");
    if let Some(line) = line {
        assert!(
            message.contains(&format!("k.key:{line}: ")),
            "names the line: {message}"
        );
    }
    (line, problem.clone())
}

#[test]
fn each_malformed_key_file_gives_its_error_and_line() {
    let dir = TempDir::new("malformed");
    let k = key(3);
    let secret = hex(&[3; 32]);
    let public = k.public().to_string();
    let other_public = key(4).public().to_string();
    let cases: Vec<(String, Option<usize>, Problem)> = vec![
        (
            format!("# c\n\npublic = {public}\n"),
            None,
            Problem::MissingSecret,
        ),
        (String::new(), None, Problem::MissingSecret),
        (format!("# c\nsecret {secret}\n"), Some(2), Problem::Syntax),
        (
            format!("# c\nsecret = {secret}\nsecrt = {public}\n"),
            Some(3),
            Problem::UnknownName("secrt".into()),
        ),
        (
            format!("\n\nsecret = {}zz\n", &secret[..62]),
            Some(3),
            Problem::BadHex,
        ),
        (
            format!("secret = {}\n", &secret[..60]),
            Some(1),
            Problem::WrongLength(60),
        ),
        (
            format!("secret = {secret}00\n"),
            Some(1),
            Problem::WrongLength(66),
        ),
        (
            format!("secret = {secret}\npublic = 12\n"),
            Some(2),
            Problem::WrongLength(2),
        ),
        (
            format!("# c\nsecret = {secret}\n# c\npublic = {other_public}\n"),
            Some(4),
            Problem::PublicMismatch,
        ),
        (
            format!("secret = {secret}\n\nsecret = {secret}\n"),
            Some(3),
            Problem::Duplicate {
                name: "secret",
                first: 1,
            },
        ),
    ];
    for (text, line, problem) in cases {
        assert_eq!(
            key_file_problem(&dir, &text),
            (line, problem.clone()),
            "file:\n{text}"
        );
        if problem == Problem::PublicMismatch {
            let message = read_key_file(&dir.0.join("k.key"))
                .expect_err("bad")
                .to_string();
            assert!(
                message.contains("regenerate it with `prsm keygen`"),
                "{message}"
            );
        }
    }
    // Comments, blank lines, spacing and case are fine; `public` is optional.
    let ok = dir.file(
        "ok.key",
        &format!(
            "# c\n\n  secret=  {}  \n# public below\npublic = {public}\n",
            secret.to_uppercase()
        ),
    );
    assert_eq!(read_key_file(&ok).expect("valid").public(), k.public());
    let ok = dir.file("ok2.key", &format!("secret = {secret}\n"));
    assert_eq!(read_key_file(&ok).expect("valid").public(), k.public());
}

#[test]
fn tampered_public_key_is_detected() {
    let dir = TempDir::new("tampered");
    let path = dir.path().join("a.key");
    write_key_file(&path, &key(9)).expect("write");
    let text = std::fs::read_to_string(&path).expect("text");
    let public = key(9).public().to_string();
    // Flip the last hex digit of the public key.
    let last = public.chars().last().expect("non-empty");
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = text.replace(&public, &format!("{}{flipped}", &public[..63]));
    std::fs::remove_file(&path).expect("remove");
    std::fs::write(&path, tampered).expect("write");
    let err = read_key_file(&path).expect_err("tampered");
    assert_eq!(err.malformed(), Some((Some(3), &Problem::PublicMismatch)));
}

#[test]
fn missing_and_unreadable_key_files() {
    let dir = TempDir::new("missing");
    let err = read_key_file(&dir.0.join("absent.key")).expect_err("absent");
    assert!(matches!(err, KeyError::Missing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("absent.key: no such file"),
        "{err}"
    );
    let path = dir.0.join("binary.key");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).expect("write");
    let err = read_key_file(&path).expect_err("not text");
    assert!(matches!(err, KeyError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains("binary.key: cannot read"), "{err}");
}

#[test]
fn keygen_round_trip_ranks_follow_sorted_keys() {
    let dir = TempDir::new("keygen");
    let out = dir.0.join("cluster"); // created by keygen
    let roster = keygen(&out, 5).expect("keygen");
    assert_eq!(roster.len(), 5);
    assert!(roster.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    assert_eq!(read_roster(&out.join("roster")).expect("roster"), roster);
    for (rank, public) in roster.iter().enumerate() {
        let k = read_key_file(&out.join(format!("node-{rank}.key"))).expect("key");
        assert_eq!(k.public(), *public);
        assert_eq!(roster_rank(&roster, public), Some(rank as u32));
    }
    assert_eq!(roster_rank(&roster, &key(1).public()), None);
    let text = std::fs::read_to_string(out.join("roster")).expect("text");
    let mut lines = text.lines();
    assert!(lines.next().is_some_and(|l| l.starts_with('#')));
    assert_eq!(lines.next(), Some(format!("0 {}", roster[0]).as_str()));
}

#[test]
fn keygen_refuses_existing_files() {
    let dir = TempDir::new("keygen-exists");
    dir.file("node-2.key", "precious");
    let err = keygen(dir.path(), 3).expect_err("must refuse");
    assert!(
        matches!(&err, KeyError::Exists { path } if path.ends_with("node-2.key")),
        "{err:?}"
    );
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    // Nothing was written.
    assert!(!dir.0.join("node-0.key").exists());
    assert!(!dir.0.join("roster").exists());
    assert_eq!(
        std::fs::read_to_string(dir.0.join("node-2.key")).expect("text"),
        "precious"
    );

    let dir = TempDir::new("keygen-roster-exists");
    dir.file("roster", "precious");
    let err = keygen(dir.path(), 2).expect_err("must refuse");
    assert!(
        matches!(&err, KeyError::Exists { path } if path.ends_with("roster")),
        "{err:?}"
    );
    assert!(matches!(keygen(dir.path(), 0), Err(KeyError::NoNodes)));
}

#[test]
fn each_malformed_roster_gives_its_error_and_line() {
    let dir = TempDir::new("roster");
    let mut keys: Vec<PublicKey> = (1..=3).map(|s| key(s).public()).collect();
    keys.sort();
    let [a, b, c] = [keys[0], keys[1], keys[2]];
    let good = format!("# roster\n0 {a}\n\n1 {b}\n2 {c}\n");
    assert_eq!(read_roster(&dir.file("r", &good)).expect("valid"), keys);
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let not_a_point = PublicKey(not_a_point);
    let cases: Vec<(String, Option<usize>, Problem)> = vec![
        ("# nothing\n".into(), None, Problem::Empty),
        (
            format!("# r\n1 {a}\n"),
            Some(2),
            Problem::BadRank { expected: 0 },
        ),
        (
            format!("0 {a}\n2 {b}\n"),
            Some(2),
            Problem::BadRank { expected: 1 },
        ),
        (
            format!("0 {a}\nx {b}\n"),
            Some(2),
            Problem::BadRank { expected: 1 },
        ),
        (format!("0 {b}\n1 {a}\n"), Some(2), Problem::NotAscending),
        (format!("0 {a}\n1 {a}\n"), Some(2), Problem::NotAscending),
        (format!("0 {a}\n1\n"), Some(2), Problem::RosterSyntax),
        (format!("0 {a} extra\n"), Some(1), Problem::RosterSyntax),
        (
            format!("0 {}\n", &a.to_string()[..10]),
            Some(1),
            Problem::WrongLength(10),
        ),
        (
            format!("0 {}g\n", &a.to_string()[..63]),
            Some(1),
            Problem::BadHex,
        ),
        (format!("0 {not_a_point}\n"), Some(1), Problem::NotAKey),
    ];
    for (text, line, problem) in cases {
        let err = read_roster(&dir.file("r", &text)).expect_err("malformed");
        assert_eq!(err.malformed(), Some((line, &problem)), "roster:\n{text}");
        if let Some(line) = line {
            assert!(err.to_string().contains(&format!("r:{line}: ")), "{err}");
        }
    }
}
