//! Node keys: ed25519 keypairs, the text key file that holds one, and the cluster roster.
//!
//! A node's identity is its public key. The state machines address peers by a dense index, so the
//! cluster's public keys are listed **sorted ascending** in the *roster* and a node's id is the
//! rank of its key there: the id is derived from the key, not assigned separately.
//!
//! Key file (text, so a human can read it; `#` lines and blank lines are ignored):
//!
//! ```text
//! # prsm node key (ed25519). Keep this file secret.
//! secret = <64 hex chars>
//! public = <64 hex chars>
//! ```
//!
//! `public` is optional on reading (it is derived from `secret`), but when present it must match.
//!
//! Roster file: comment lines, then one line per node, `<rank> <public hex>`, ranks `0..n` in
//! order and keys strictly ascending.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The first line of every key file.
const KEY_FILE_HEADER: &str = "# prsm node key (ed25519). Keep this file secret.";
/// The first line of every roster file.
const ROSTER_HEADER: &str =
    "# prsm roster: <node id> <ed25519 public key>; the id is the rank of the key, keys ascending";
/// What to do about a damaged key file.
const REGENERATE: &str = "the key file is corrupt; regenerate it with `prsm keygen`";

/// An ed25519 signing key. `Debug` shows only the public half.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ public: {} }}", self.public())
    }
}

impl Keypair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Keypair, KeyError> {
        Ok(Keypair::from_secret(random_32()?))
    }

    /// The key with this 32-byte ed25519 secret (seed).
    pub fn from_secret(secret: [u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// The public half: the node's identity.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

/// 32 bytes from the operating system's random source.
pub(crate) fn random_32() -> Result<[u8; 32], KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
    Ok(bytes)
}

/// An ed25519 public key: a node's identity. Ordered bytewise, which is the roster order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    /// Lowercase hex, 64 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl PublicKey {
    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<PublicKey, String> {
        decode_hex_32(s).map(PublicKey).map_err(|e| e.to_string())
    }

    /// Whether `sig` is this key's signature of `msg` (strict verification: rejects small-order
    /// keys and non-canonical signatures). False, never a panic, if the key is not a valid point.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        match self.verifying_key() {
            Some(key) => verify_with(&key, msg, sig),
            None => false,
        }
    }

    /// The decompressed key, or `None` if these bytes are not a curve point.
    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

/// Strict ed25519 verification with an already decompressed key.
pub(crate) fn verify_with(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    key.verify_strict(msg, &Signature::from_bytes(sig)).is_ok()
}

/// Everything that can go wrong with key and roster files. `Display` names the file, the line
/// when there is one, what is wrong and what to do about it.
#[derive(Debug)]
pub enum KeyError {
    /// The operating system's random source failed.
    Random(getrandom::Error),
    /// No file at this path.
    Missing { path: PathBuf },
    /// The file exists but cannot be read as text.
    Unreadable { path: PathBuf, error: io::Error },
    /// A file `keygen` would write already exists.
    Exists { path: PathBuf },
    /// Creating or writing a file failed.
    Write { path: PathBuf, error: io::Error },
    /// `keygen` was asked for zero keys.
    NoNodes,
    /// The file's content is wrong; `line` is 1-based, `None` when the problem is the whole file.
    Malformed {
        path: PathBuf,
        line: Option<usize>,
        problem: Problem,
    },
}

/// What is wrong inside a key or roster file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A key file line is not `name = value`.
    Syntax,
    /// A key file line names something other than `secret` or `public`.
    UnknownName(String),
    /// A name given twice; the payload is the line of the first occurrence.
    Duplicate { name: &'static str, first: usize },
    /// The key file has no `secret` line.
    MissingSecret,
    /// A key value contains a character that is not a hex digit.
    BadHex,
    /// A key value has this many characters instead of 64.
    WrongLength(usize),
    /// `public` is not the public key of `secret`.
    PublicMismatch,
    /// A roster line is not `<rank> <public hex>`.
    RosterSyntax,
    /// A roster line's rank is not the expected one (ranks are 0, 1, 2, ... in order).
    BadRank { expected: usize },
    /// A roster key is not greater than the one before it (the roster is sorted and unique).
    NotAscending,
    /// A roster key is not a valid ed25519 public key.
    NotAKey,
    /// The roster lists no node.
    Empty,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax => write!(
                f,
                "expected `secret = <64 hex chars>` or `public = <64 hex chars>`; {REGENERATE}"
            ),
            Problem::UnknownName(name) => write!(
                f,
                "unknown key `{name}` (a key file has only `secret` and `public`); {REGENERATE}"
            ),
            Problem::Duplicate { name, first } => write!(
                f,
                "`{name}` given again (first on line {first}); {REGENERATE}"
            ),
            Problem::MissingSecret => write!(f, "no `secret = <64 hex chars>` line; {REGENERATE}"),
            Problem::BadHex => write!(
                f,
                "not hexadecimal (a key is 64 characters 0-9, a-f); {REGENERATE}"
            ),
            Problem::WrongLength(n) => write!(
                f,
                "{n} characters, expected 64 hex characters (32 bytes); {REGENERATE}"
            ),
            Problem::PublicMismatch => {
                write!(f, "`public` does not match the secret: {REGENERATE}")
            }
            Problem::RosterSyntax => write!(
                f,
                "expected `<rank> <64 hex chars>`; regenerate the roster with `prsm keygen`"
            ),
            Problem::BadRank { expected } => write!(
                f,
                "expected rank {expected} (ranks are 0, 1, 2, ... in order); \
                 regenerate the roster with `prsm keygen`"
            ),
            Problem::NotAscending => write!(
                f,
                "key not greater than the previous one (the roster is sorted by key, each key \
                 once); regenerate the roster with `prsm keygen`"
            ),
            Problem::NotAKey => write!(
                f,
                "not a valid ed25519 public key; regenerate the roster with `prsm keygen`"
            ),
            Problem::Empty => write!(
                f,
                "the roster lists no node; regenerate it with `prsm keygen`"
            ),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Random(e) => write!(
                f,
                "the operating system's random source failed ({e}); retry, or check the system's \
                 entropy source"
            ),
            KeyError::Missing { path } => write!(
                f,
                "{}: no such file; create keys with `prsm keygen` or check the path",
                path.display()
            ),
            KeyError::Unreadable { path, error } => write!(
                f,
                "{}: cannot read ({error}); check the file's permissions and that it is a text \
                 file written by `prsm keygen`",
                path.display()
            ),
            KeyError::Exists { path } => write!(
                f,
                "{}: already exists; refusing to overwrite a key, move it away or choose another \
                 directory",
                path.display()
            ),
            KeyError::Write { path, error } => write!(
                f,
                "{}: cannot write ({error}); check the directory exists and is writable",
                path.display()
            ),
            KeyError::NoNodes => write!(f, "asked for 0 keys; a cluster needs at least one node"),
            KeyError::Malformed {
                path,
                line: Some(line),
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            KeyError::Malformed {
                path,
                line: None,
                problem,
            } => write!(f, "{}: {problem}", path.display()),
        }
    }
}

impl std::error::Error for KeyError {}

impl KeyError {
    /// The problem and its 1-based line, for a malformed file.
    pub fn malformed(&self) -> Option<(Option<usize>, &Problem)> {
        match self {
            KeyError::Malformed { line, problem, .. } => Some((*line, problem)),
            _ => None,
        }
    }
}

/// Writes `key` to a new file at `path` (mode 0o600 on unix). Refuses to overwrite: an existing
/// file gives an error of kind [`io::ErrorKind::AlreadyExists`].
pub fn write_key_file(path: &Path, key: &Keypair) -> io::Result<()> {
    let secret = key.signing.to_bytes();
    let text = format!(
        "{KEY_FILE_HEADER}\nsecret = {}\npublic = {}\n",
        hex_encode(&secret),
        key.public()
    );
    write_new(path, &text, 0o600)
}

/// Creates `path` (failing if it exists) and writes `text` to it.
fn write_new(
    path: &Path,
    text: &str,
    #[cfg_attr(not(unix), allow(unused))] mode: u32,
) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Reads a file as text, mapping failures to located errors.
fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => KeyError::Missing {
            path: path.to_path_buf(),
        },
        _ => KeyError::Unreadable {
            path: path.to_path_buf(),
            error,
        },
    })
}

/// The meaningful lines of a text file: 1-based number and trimmed content, without blank lines
/// and `#` comments.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// Reads a key file written by [`write_key_file`].
pub fn read_key_file(path: &Path) -> Result<Keypair, KeyError> {
    let text = read_text(path)?;
    let bad = |line: usize, problem: Problem| KeyError::Malformed {
        path: path.to_path_buf(),
        line: Some(line),
        problem,
    };
    let mut secret: Option<(usize, [u8; 32])> = None;
    let mut public: Option<(usize, [u8; 32])> = None;
    for (number, line) in content_lines(&text) {
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad(number, Problem::Syntax));
        };
        let (name, value) = (name.trim(), value.trim());
        let (slot, name) = match name {
            "secret" => (&mut secret, "secret"),
            "public" => (&mut public, "public"),
            other => return Err(bad(number, Problem::UnknownName(other.to_string()))),
        };
        if let Some((first, _)) = slot {
            return Err(bad(
                number,
                Problem::Duplicate {
                    name,
                    first: *first,
                },
            ));
        }
        let bytes = decode_hex_32(value).map_err(|e| bad(number, e.problem()))?;
        *slot = Some((number, bytes));
    }
    let Some((_, secret)) = secret else {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            line: None,
            problem: Problem::MissingSecret,
        });
    };
    let key = Keypair::from_secret(secret);
    if let Some((number, public)) = public
        && PublicKey(public) != key.public()
    {
        return Err(bad(number, Problem::PublicMismatch));
    }
    Ok(key)
}

/// The key file of the node with this rank, inside a `keygen` directory.
pub fn key_file_name(rank: usize) -> String {
    format!("node-{rank}.key")
}

/// Generates `n` keys for a cluster into `dir` (created if missing): `node-<rank>.key` for each
/// and `roster`, ranks following the sorted public keys. Refuses if any of these files exists.
/// Returns the roster.
pub fn keygen(dir: &Path, n: usize) -> Result<Vec<PublicKey>, KeyError> {
    if n == 0 {
        return Err(KeyError::NoNodes);
    }
    std::fs::create_dir_all(dir).map_err(|error| KeyError::Write {
        path: dir.to_path_buf(),
        error,
    })?;
    let roster_path = dir.join("roster");
    let targets = (0..n)
        .map(|rank| dir.join(key_file_name(rank)))
        .chain(std::iter::once(roster_path.clone()));
    for path in targets {
        // `symlink_metadata` so that a dangling link also counts as "exists".
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path });
        }
    }
    // Keyed by public key: sorted, and a (practically impossible) duplicate is drawn again.
    let mut keys = BTreeMap::new();
    while keys.len() < n {
        let key = Keypair::generate()?;
        keys.insert(key.public(), key);
    }
    let mut roster_text = format!("{ROSTER_HEADER}\n");
    for (rank, (public, key)) in keys.iter().enumerate() {
        let path = dir.join(key_file_name(rank));
        write_key_file(&path, key).map_err(|error| write_error(path, error))?;
        roster_text.push_str(&format!("{rank} {public}\n"));
    }
    write_new(&roster_path, &roster_text, 0o644)
        .map_err(|error| write_error(roster_path, error))?;
    Ok(keys.into_keys().collect())
}

/// A failed write, with `AlreadyExists` reported as such.
fn write_error(path: PathBuf, error: io::Error) -> KeyError {
    if error.kind() == io::ErrorKind::AlreadyExists {
        KeyError::Exists { path }
    } else {
        KeyError::Write { path, error }
    }
}

/// Reads and validates a roster file written by [`keygen`].
pub fn read_roster(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let text = read_text(path)?;
    let bad = |line: usize, problem: Problem| KeyError::Malformed {
        path: path.to_path_buf(),
        line: Some(line),
        problem,
    };
    let mut roster: Vec<PublicKey> = Vec::new();
    for (number, line) in content_lines(&text) {
        let mut words = line.split_whitespace();
        let (Some(rank), Some(hex), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad(number, Problem::RosterSyntax));
        };
        let expected = roster.len();
        if rank.parse::<usize>().ok() != Some(expected) {
            return Err(bad(number, Problem::BadRank { expected }));
        }
        let key = PublicKey(decode_hex_32(hex).map_err(|e| bad(number, e.problem()))?);
        if key.verifying_key().is_none() {
            return Err(bad(number, Problem::NotAKey));
        }
        if roster.last().is_some_and(|last| *last >= key) {
            return Err(bad(number, Problem::NotAscending));
        }
        roster.push(key);
    }
    if roster.is_empty() {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            line: None,
            problem: Problem::Empty,
        });
    }
    Ok(roster)
}

/// The node id of `key`: its rank in the sorted `roster`, or `None` if it is not a member.
pub fn roster_rank(roster: &[PublicKey], key: &PublicKey) -> Option<u32> {
    roster
        .binary_search(key)
        .ok()
        .and_then(|rank| u32::try_from(rank).ok())
}

/// Lowercase hex.
fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Why a string is not 32 bytes of hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HexError {
    BadHex,
    WrongLength(usize),
}

impl HexError {
    fn problem(self) -> Problem {
        match self {
            HexError::BadHex => Problem::BadHex,
            HexError::WrongLength(n) => Problem::WrongLength(n),
        }
    }
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::BadHex => write!(f, "not hexadecimal (expected 64 characters 0-9, a-f)"),
            HexError::WrongLength(n) => write!(f, "{n} characters, expected 64 hex characters"),
        }
    }
}

/// Exactly 64 hex digits (either case) to 32 bytes.
fn decode_hex_32(s: &str) -> Result<[u8; 32], HexError> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    if !s.bytes().all(|c| digit(c).is_some()) {
        return Err(HexError::BadHex);
    }
    let mut out = [0u8; 32];
    if s.len() != 2 * out.len() {
        return Err(HexError::WrongLength(s.len()));
    }
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (
            pair.first().and_then(|&c| digit(c)),
            pair.get(1).and_then(|&c| digit(c)),
        ) else {
            return Err(HexError::BadHex);
        };
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
