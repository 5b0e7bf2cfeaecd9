//! The live driver: one full node on a real socket.
//!
//! It feeds the same [`Node::step`] the simulator calls, from three sources: frames read off
//! peers' connections, orders on the control channel, and one ordered timer queue (the node's own
//! [`Node::next_deadline`]) keyed on the monotonic clock. It carries out every effect: a send
//! becomes a signed frame on the connection to that peer, an event a report on the control
//! channel, a persist an atomic write of the state file. A kill -9 loses exactly what a crash in
//! the simulator loses: everything but the last persisted durable state.
//!
//! Transport: TCP, one connection per ordered pair (a node dials every peer it sends to and
//! only writes on that connection; it only reads on the connections it accepts), so each
//! direction has its own handshake, counter and queue. A connection that fails drops what was
//! queued for it (counted as unreachable), as the simulator drops messages to a dead node.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prsm_protocol::full::{Full, FullCommand, FullDurable, FullMessage};
use prsm_protocol::{Effect, Input, Node, NodeId, Time};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::control::{Order, Report};
use super::counters::Counters;
use super::frame::{self, AcceptStep, FrameReader, Reject};
use super::keys::{Keypair, PublicKey, roster_rank};

/// Messages queued for one peer's connection at most; more are dropped and counted.
pub const SEND_QUEUE_MAX: usize = 4_096;
/// Messages read off all connections and not yet stepped, at most (back-pressure beyond).
pub const INBOUND_QUEUE_MAX: usize = 16_384;
/// A connection must finish its handshake within this time.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// After a failed dial, messages to that peer are dropped for this long before the next try.
pub const REDIAL_AFTER: std::time::Duration = std::time::Duration::from_millis(200);
/// How often the node reports its counters on the control channel.
pub const COUNTERS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The largest HTTP request the metrics endpoint reads.
const METRICS_REQUEST_MAX: usize = 8 * 1024;

/// Everything a live node needs besides its protocol.
#[derive(Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    pub keypair: Arc<Keypair>,
    /// Every node's public key, sorted: a node's id is its key's rank.
    pub roster: Arc<Vec<PublicKey>>,
    pub listen: SocketAddr,
    /// Each node's frame address, by id (`None`: unknown until the control channel says).
    pub peers: Vec<Option<SocketAddr>>,
    pub metrics_addr: Option<SocketAddr>,
    /// Where the durable state lives; a restart reads it back.
    pub state_file: Option<PathBuf>,
    /// Orders on stdin and reports on stdout (JSON lines): how `prsm cluster` drives a node.
    /// The node waits for the first `Peers` order before it starts its protocol.
    pub control: bool,
    /// The peers a broadcast reaches.
    pub broadcast: Vec<NodeId>,
}

/// Why a node could not start.
#[derive(Debug)]
pub enum LiveError {
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    State {
        path: PathBuf,
        reason: String,
    },
    Runtime(std::io::Error),
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveError::Bind { what, addr, source } => write!(
                f,
                "cannot bind the {what} address {addr}: {source}; pick a free port (or port 0 for any)"
            ),
            LiveError::State { path, reason } => write!(
                f,
                "cannot read the durable state {}: {reason}; delete it to start the node empty",
                path.display()
            ),
            LiveError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
        }
    }
}

impl std::error::Error for LiveError {}

/// Reads the durable state a previous incarnation persisted, if any. The file holds one
/// record: its length (4 bytes, little-endian), then the postcard encoding.
pub fn load_state(path: Option<&Path>) -> Result<Option<FullDurable>, LiveError> {
    let Some(path) = path else { return Ok(None) };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LiveError::State {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    let corrupt = |reason: String| LiveError::State {
        path: path.to_owned(),
        reason,
    };
    let len = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("shorter than its length field".to_owned()))?;
    let record = bytes
        .get(4..4 + len as usize)
        .ok_or_else(|| corrupt(format!("a record of {len} bytes does not fit in the file")))?;
    postcard::from_bytes(record)
        .map(Some)
        .map_err(|e| corrupt(format!("not a state file of this version ({e})")))
}

/// The durable-state file, kept open: each persist overwrites the one record in place with a
/// single write at offset 0 (a process killed with -9 leaves the old record or the new one; a
/// longer old record's tail is ignored by the length field). No rename, no new inode: a persist
/// costs one write into the page cache, which matters to a PBFT client that persists on every
/// request. It does not survive a power loss (no fsync); a crash is a killed process.
struct StateFile {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl StateFile {
    fn open(path: &Path) -> std::io::Result<StateFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(StateFile {
            file,
            buf: Vec::new(),
        })
    }

    fn save(&mut self, state: &FullDurable) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let body = postcard::to_stdvec(state).map_err(std::io::Error::other)?;
        let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&body);
        self.file.write_all_at(&self.buf, 0)
    }
}

/// Runs the node until stopped (a `Stop` order, the control channel closing, or the process
/// being killed). `build` makes the protocol from the durable state read back, if any.
pub fn run(
    cfg: NodeConfig,
    build: impl FnOnce(Option<FullDurable>) -> Node<Full>,
) -> Result<(), LiveError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LiveError::Runtime)?;
    runtime.block_on(run_async(cfg, build))
}

/// A message read off a connection, or the node's own send to itself.
type Inbound = (NodeId, FullMessage);

async fn run_async(
    cfg: NodeConfig,
    build: impl FnOnce(Option<FullDurable>) -> Node<Full>,
) -> Result<(), LiveError> {
    let durable = load_state(cfg.state_file.as_deref())?;
    let state_file = match &cfg.state_file {
        Some(path) => Some(StateFile::open(path).map_err(|e| LiveError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| LiveError::Bind {
            what: "frame",
            addr: cfg.listen,
            source,
        })?;
    let listen = listener.local_addr().map_err(LiveError::Runtime)?;
    let metrics_listener = match cfg.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| LiveError::Bind {
                    what: "metrics",
                    addr,
                    source,
                })?,
        ),
        None => None,
    };
    let metrics_at = match &metrics_listener {
        Some(l) => Some(l.local_addr().map_err(LiveError::Runtime)?),
        None => None,
    };
    let n = cfg.roster.len();
    let counters = Arc::new(Mutex::new(Counters::new(Full::LAYERS.len())));
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE_MAX);
    tokio::spawn(accept_loop(
        listener,
        cfg.keypair.clone(),
        cfg.roster.clone(),
        inbound_tx,
        counters.clone(),
    ));
    if let Some(l) = metrics_listener {
        tokio::spawn(metrics_loop(l, counters.clone(), cfg.id.0));
    }
    tracing::info!(node = cfg.id.0, %listen, metrics = ?metrics_at, "listening");

    let mut out = Reporter::new(cfg.control);
    out.send(&Report::<()>::Ready {
        id: cfg.id.0,
        listen: listen.to_string(),
        metrics: metrics_at.map(|a| a.to_string()),
    });
    out.flush();
    let (peers_tx, peers_rx) = watch::channel(cfg.peers.clone());
    let mut orders = cfg.control.then(spawn_stdin_reader);
    // Under control, the protocol starts once the cluster has said where everyone is.
    if let Some(rx) = orders.as_mut() {
        loop {
            match rx.recv().await {
                Some(Order::Peers(list)) => {
                    let _ = peers_tx.send(parse_peers(&list, n));
                    break;
                }
                Some(Order::Stop) | None => return Ok(()),
                Some(_) => {}
            }
        }
    }

    let mut driver = Driver {
        id: cfg.id,
        node: build(durable),
        outbound: (0..n).map(|_| None).collect(),
        effects: Vec::new(),
        keypair: cfg.keypair.clone(),
        roster: cfg.roster.clone(),
        peers: peers_rx,
        counters: counters.clone(),
        cut_to: vec![false; n],
        cut_from: vec![false; n],
        broadcast: cfg.broadcast.clone(),
        state_file,
        own: std::collections::VecDeque::new(),
        out,
    };
    // The monotonic clock, read only here: the node's time is the time since it started.
    #[allow(clippy::disallowed_methods)]
    let started = tokio::time::Instant::now();
    let now = move || Time(started.elapsed().as_nanos() as u64);
    driver.step(now(), Input::Start);
    let mut report_every = tokio::time::interval(COUNTERS_EVERY);
    loop {
        while let Some((from, msg)) = driver.own.pop_front() {
            driver.step(now(), Input::Message { from, msg });
        }
        let deadline = driver
            .node
            .next_deadline()
            .map(|t| started + std::time::Duration::from_nanos(t.0));
        tokio::select! {
            Some((from, msg)) = inbound_rx.recv() => {
                if driver.cut_from.get(from.index()).copied().unwrap_or(false) {
                    lock(&counters).cut_in += 1;
                } else {
                    driver.step(now(), Input::Message { from, msg });
                }
            }
            order = recv_order(&mut orders) => match order {
                Some(Order::Command(cmd)) => driver.step(now(), Input::Command(cmd)),
                Some(Order::Peers(list)) => {
                    tracing::info!(node = cfg.id.0, "peer addresses updated");
                    let _ = peers_tx.send(parse_peers(&list, n));
                }
                Some(Order::Cut { to, from }) => {
                    tracing::info!(node = cfg.id.0, to = ?to, from = ?from, "drop rules");
                    driver.cut_to = flags(&to, n);
                    driver.cut_from = flags(&from, n);
                }
                Some(Order::Stop) | None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => driver.step(now(), Input::Tick),
            _ = report_every.tick() => driver.report_counters(),
        }
        driver.out.flush();
        if driver.out.broken {
            break;
        }
    }
    driver.report_counters();
    driver.out.flush();
    tracing::info!(node = cfg.id.0, "stopped");
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}

async fn recv_order(
    orders: &mut Option<mpsc::Receiver<Order<FullCommand>>>,
) -> Option<Order<FullCommand>> {
    match orders {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn lock(c: &Mutex<Counters>) -> std::sync::MutexGuard<'_, Counters> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn flags(ids: &[u32], n: usize) -> Vec<bool> {
    let mut f = vec![false; n];
    for &i in ids {
        if let Some(slot) = f.get_mut(i as usize) {
            *slot = true;
        }
    }
    f
}

fn parse_peers(list: &[Option<String>], n: usize) -> Vec<Option<SocketAddr>> {
    let mut out: Vec<Option<SocketAddr>> = list
        .iter()
        .map(|a| a.as_deref().and_then(|s| s.parse().ok()))
        .collect();
    out.resize(n, None);
    out
}

/// Reports on stdout (under control) or nowhere. Reports are buffered and written once per
/// input the node handled (one write and flush, however many events the input caused).
struct Reporter {
    control: bool,
    buf: Vec<u8>,
    /// Writing failed: the cluster is gone, and the node stops.
    broken: bool,
}

impl Reporter {
    fn new(control: bool) -> Reporter {
        Reporter {
            control,
            buf: Vec::new(),
            broken: false,
        }
    }

    fn send<E: serde::Serialize>(&mut self, report: &Report<E>) {
        if self.control && serde_json::to_writer(&mut self.buf, report).is_ok() {
            self.buf.push(b'\n');
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(&self.buf)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            self.control = false;
            self.broken = true;
        }
        self.buf.clear();
    }
}

/// Orders from stdin, one JSON object per line; a line that is not an order is logged and
/// skipped. The channel closes with stdin.
fn spawn_stdin_reader() -> mpsc::Receiver<Order<FullCommand>> {
    let (tx, rx) = mpsc::channel(1_024);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        loop {
            line.clear();
            match tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Order<FullCommand>>(line.trim()) {
                Ok(order) => {
                    if tx.send(order).await.is_err() {
                        break;
                    }
                }
                Err(e) => tracing::warn!("ignored a control line that is not an order: {e}"),
            }
        }
    });
    rx
}

struct Driver {
    id: NodeId,
    node: Node<Full>,
    outbound: Vec<Option<mpsc::Sender<Arc<[u8]>>>>,
    /// The effects of the step in progress (one buffer, reused).
    effects: Vec<Effect<Full>>,
    keypair: Arc<Keypair>,
    roster: Arc<Vec<PublicKey>>,
    peers: watch::Receiver<Vec<Option<SocketAddr>>>,
    counters: Arc<Mutex<Counters>>,
    cut_to: Vec<bool>,
    cut_from: Vec<bool>,
    broadcast: Vec<NodeId>,
    state_file: Option<StateFile>,
    /// The node's sends to itself, stepped before anything else.
    own: std::collections::VecDeque<Inbound>,
    out: Reporter,
}

impl Driver {
    fn step(&mut self, now: Time, input: Input<Full>) {
        let mut effects = std::mem::take(&mut self.effects);
        self.node.step_into(now, input, &mut effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, msg } => {
                    if to == self.id {
                        self.own.push_back((to, msg));
                    } else if let Some(payload) = self.encode(&msg) {
                        self.enqueue(to, payload);
                    }
                }
                Effect::Broadcast { msg } => {
                    // Encoded once; every peer's queue shares the bytes.
                    let Some(payload) = self.encode(&msg) else {
                        continue;
                    };
                    for i in 0..self.broadcast.len() {
                        let to = self.broadcast[i];
                        if to != self.id {
                            self.enqueue(to, payload.clone());
                        }
                    }
                }
                Effect::Emit(event) => {
                    if let Some(slot) = lock(&self.counters).layer_events.get_mut(event.layer()) {
                        *slot += 1;
                    }
                    self.out.send(&Report::Event {
                        at_ns: super::control::wall_clock_ns(),
                        event,
                    });
                }
                Effect::Persist(state) => self.persist(&state),
                Effect::Evidence(e) => {
                    lock(&self.counters).evidence += 1;
                    tracing::info!(node = self.id.0, accused = e.accused.0, kind = ?e.kind, "evidence");
                }
            }
        }
        self.effects = effects;
        lock(&self.counters).set_node_stats(self.node.stats());
    }

    /// The message's wire payload, or None (counted) if it cannot travel in one frame.
    fn encode(&mut self, msg: &FullMessage) -> Option<Arc<[u8]>> {
        let payload = postcard::to_stdvec(msg).ok();
        let mut c = lock(&self.counters);
        let Some(payload) = payload.filter(|p| p.len() <= frame::PAYLOAD_MAX) else {
            c.too_large += 1;
            return None;
        };
        let layer = msg.layer();
        if let Some(m) = c.layer_messages.get_mut(layer) {
            *m += 1;
        }
        if let Some(b) = c.layer_bytes.get_mut(layer) {
            *b += payload.len() as u64;
        }
        Some(payload.into())
    }

    fn enqueue(&mut self, to: NodeId, payload: Arc<[u8]>) {
        let Some(slot) = self.outbound.get_mut(to.index()) else {
            return;
        };
        if self.cut_to.get(to.index()).copied().unwrap_or(false) {
            lock(&self.counters).cut_out += 1;
            return;
        }
        let tx = slot.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(SEND_QUEUE_MAX);
            tokio::spawn(dial_loop(
                to,
                self.roster.get(to.index()).copied(),
                self.keypair.clone(),
                rx,
                self.peers.clone(),
                self.counters.clone(),
            ));
            tx
        });
        if tx.try_send(payload).is_err() {
            lock(&self.counters).queue_full += 1;
        }
    }

    fn persist(&mut self, state: &FullDurable) {
        let Some(file) = self.state_file.as_mut() else {
            return;
        };
        let result = file.save(state);
        let mut c = lock(&self.counters);
        match result {
            Ok(()) => c.persists += 1,
            Err(e) => {
                c.persist_errors += 1;
                tracing::error!(node = self.id.0, "cannot write the durable state: {e}");
            }
        }
    }

    fn report_counters(&mut self) {
        let snapshot = lock(&self.counters).clone();
        self.out.send(&Report::<()>::Counters(Box::new(snapshot)));
    }
}

/// Accepts connections and serves each on its own task.
async fn accept_loop(
    listener: TcpListener,
    keypair: Arc<Keypair>,
    roster: Arc<Vec<PublicKey>>,
    inbound: mpsc::Sender<Inbound>,
    counters: Arc<Mutex<Counters>>,
) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_inbound(
            stream,
            addr,
            keypair.clone(),
            roster.clone(),
            inbound.clone(),
            counters.clone(),
        ));
    }
}

/// One accepted connection: the listener's side of the handshake, then data frames, each
/// checked (signature, counter, decoding) before the node sees it. A bad frame is dropped and
/// counted; a frame that breaks the stream (bad version, oversized length) ends the connection.
async fn serve_inbound(
    mut stream: TcpStream,
    addr: SocketAddr,
    keypair: Arc<Keypair>,
    roster: Arc<Vec<PublicKey>>,
    inbound: mpsc::Sender<Inbound>,
    counters: Arc<Mutex<Counters>>,
) {
    let mut reader = FrameReader::new();
    let mut handshake = match frame::accept(&keypair) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::error!("no randomness for a handshake nonce: {e}");
            return;
        }
    };
    let mut session = None;
    let mut from = NodeId(0);
    let mut buf = vec![0u8; 64 * 1024];
    #[allow(clippy::disallowed_methods)]
    let opened = tokio::time::Instant::now();
    loop {
        let read = if session.is_none() {
            match tokio::time::timeout_at(opened + HANDSHAKE_TIMEOUT, stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    lock(&counters).reject(Reject::Handshake);
                    tracing::debug!(%addr, "handshake timed out");
                    return;
                }
            }
        } else {
            stream.read(&mut buf).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        reader.push(&buf[..n]);
        while let Some(item) = reader.next_frame() {
            let (kind, body) = match item {
                Ok(f) => f,
                Err(reason) => {
                    lock(&counters).reject(reason);
                    tracing::debug!(%addr, reason = reason.name(), "stream rejected");
                    return;
                }
            };
            match (&mut session, handshake.as_mut()) {
                (Some(s), _) => match frame::Session::open_msg::<FullMessage>(s, kind, &body) {
                    Ok(msg) => {
                        {
                            let mut c = lock(&counters);
                            c.frames_received += 1;
                            c.bytes_received += (body.len() + frame::HEADER_LEN) as u64;
                        }
                        if inbound.send((from, msg)).await.is_err() {
                            return;
                        }
                    }
                    Err(reason) => {
                        lock(&counters).reject(reason);
                        tracing::debug!(%addr, reason = reason.name(), "frame rejected");
                    }
                },
                (None, Some(state)) => match state.on_frame(kind, &body, &roster) {
                    Ok(AcceptStep::Reply(bytes)) => {
                        if stream.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Ok(AcceptStep::Done(s)) => {
                        let Some(rank) = roster_rank(&roster, &s.peer()) else {
                            lock(&counters).reject(Reject::UnknownKey);
                            return;
                        };
                        from = NodeId(rank);
                        session = Some(s);
                        handshake = None;
                        lock(&counters).connections_in += 1;
                    }
                    Err(reason) => {
                        lock(&counters).reject(reason);
                        tracing::debug!(%addr, reason = reason.name(), "handshake rejected");
                        return;
                    }
                },
                (None, None) => return,
            }
        }
    }
    if let Some(reason) = reader.finish() {
        lock(&counters).reject(reason);
    }
}

/// The connection to one peer: dials when there is something to send, runs the dialer's side
/// of the handshake, then writes sealed frames. While the peer cannot be reached, what is
/// queued for it is dropped and counted.
async fn dial_loop(
    to: NodeId,
    expect: Option<PublicKey>,
    keypair: Arc<Keypair>,
    mut queue: mpsc::Receiver<Arc<[u8]>>,
    peers: watch::Receiver<Vec<Option<SocketAddr>>>,
    counters: Arc<Mutex<Counters>>,
) {
    let Some(expect) = expect else { return };
    while let Some(first) = queue.recv().await {
        let addr = peers.borrow().get(to.index()).copied().flatten();
        let connected = match addr {
            Some(addr) => connect(addr, &keypair, expect).await,
            None => Err(()),
        };
        let Ok((stream, mut session)) = connected else {
            let mut dropped = 1;
            // Drop what is queued now and what comes during the pause before the next dial.
            #[allow(clippy::disallowed_methods)]
            let until = tokio::time::Instant::now() + REDIAL_AFTER;
            while let Ok(Some(_)) = tokio::time::timeout_at(until, queue.recv()).await {
                dropped += 1;
            }
            lock(&counters).unreachable += dropped;
            continue;
        };
        lock(&counters).connections_out += 1;
        let mut writer = BufWriter::new(stream);
        let mut next = Some(first);
        'connected: while let Some(payload) = next.take() {
            let sealed = session.seal(&payload);
            let len = sealed.len() as u64;
            if writer.write_all(&sealed).await.is_err() {
                lock(&counters).unreachable += 1;
                break 'connected;
            }
            {
                let mut c = lock(&counters);
                c.frames_sent += 1;
                c.bytes_sent += len;
            }
            // Coalesce whatever else is queued, then flush before waiting.
            next = match queue.try_recv() {
                Ok(p) => Some(p),
                Err(_) => {
                    if writer.flush().await.is_err() {
                        break 'connected;
                    }
                    queue.recv().await
                }
            };
            if next.is_none() {
                return;
            }
        }
    }
}

/// Dials `addr` and runs the dialer's side of the handshake, expecting `expect`'s key there.
async fn connect(
    addr: SocketAddr,
    keypair: &Keypair,
    expect: PublicKey,
) -> Result<(TcpStream, frame::Session), ()> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|_| ())?;
        let _ = stream.set_nodelay(true);
        let (state, hello) = frame::dial(keypair, expect).map_err(|_| ())?;
        stream.write_all(&hello).await.map_err(|_| ())?;
        let mut reader = FrameReader::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            reader.push(&buf[..n]);
            if let Some(item) = reader.next_frame() {
                let (kind, body) = item.map_err(|_| ())?;
                let (session, proof) = state.on_frame(kind, &body).map_err(|_| ())?;
                stream.write_all(&proof).await.map_err(|_| ())?;
                return Ok((stream, session));
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(()))
}

/// The Prometheus endpoint: any HTTP request gets the counters in the text format.
async fn metrics_loop(listener: TcpListener, counters: Arc<Mutex<Counters>>, node: u32) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            let read_head = async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n")
                    && request.len() < METRICS_REQUEST_MAX
                {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                true
            };
            let complete = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head)
                .await
                .unwrap_or(false);
            if !complete {
                return;
            }
            let body = lock(&counters).prometheus(node, Full::LAYERS);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
