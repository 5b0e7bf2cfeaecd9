//! The PBFT client: one request outstanding, sent to the primary it believes in, accepted on f+1
//! matching replies from distinct replicas, retransmitted to every replica on a timeout.

use std::collections::VecDeque;

use super::{Env, PbftEvent, PbftMessage, PbftTimer, Request, Signer};
use crate::Time;
use crate::pbft::Reply;

struct Outstanding {
    request: Request,
    sent_at: Time,
    /// (replica, result) of each distinct replica's reply.
    replies: Vec<(u32, u64)>,
}

pub(crate) struct Client {
    pub next_timestamp: u64,
    /// The view of the latest reply: the client sends to that view's primary.
    view: u64,
    current: Option<Outstanding>,
    queue: VecDeque<(u64, u32)>,
    /// Outside the primary partition: new operations are held, nothing is (re)sent.
    suspended: bool,
}

impl Client {
    /// Bytes the client holds beyond its own struct: its queue.
    pub fn heap_bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<(u64, u32)>()
    }

    pub fn new(next_timestamp: u64) -> Self {
        Client {
            next_timestamp: next_timestamp.max(1),
            view: 0,
            current: None,
            queue: VecDeque::new(),
            suspended: false,
        }
    }

    /// The node left the primary partition: hold new operations (queued, or refused when the
    /// queue is full) and stop retransmitting until it is back.
    pub fn suspend(&mut self, env: &mut Env<'_, '_>) {
        if self.suspended {
            return;
        }
        self.suspended = true;
        env.ctx.emit(PbftEvent::Suspended {
            queued: self.queue.len() as u32 + u32::from(self.current.is_some()),
        });
    }

    /// Back in the primary partition: retransmit the outstanding request to every replica, or
    /// send the first held one.
    pub fn resume(&mut self, env: &mut Env<'_, '_>) {
        if !self.suspended {
            return;
        }
        self.suspended = false;
        env.ctx.emit(PbftEvent::Resumed {
            queued: self.queue.len() as u32 + u32::from(self.current.is_some()),
        });
        if let Some(current) = &self.current {
            env.multicast(None, &PbftMessage::Request(current.request));
            env.ctx
                .set_timer(PbftTimer::ClientRetry, env.config.client_timeout);
        } else if let Some((op, size)) = self.queue.pop_front() {
            self.send(env, op, size);
        }
    }

    pub fn submit(&mut self, env: &mut Env<'_, '_>, op: u64, size: u32) {
        if self.current.is_some() || self.suspended {
            if self.queue.len() >= env.config.pending_max {
                env.stats.queue_full += 1;
                env.ctx.emit(PbftEvent::Refused);
                return;
            }
            if self.suspended {
                env.stats.held += 1;
            }
            self.queue.push_back((op, size));
            return;
        }
        self.send(env, op, size);
    }

    fn send(&mut self, env: &mut Env<'_, '_>, op: u64, size: u32) {
        let client = env.ctx.id();
        let mut request = Request {
            client,
            timestamp: self.next_timestamp,
            op,
            size,
            sig: super::Sig(0),
        };
        request.sig = env.sign(Signer::Client(client), request.content());
        self.next_timestamp += 1;
        env.ctx.emit(PbftEvent::Submitted { request });
        let primary = env.roster.primary(self.view);
        env.send_to_replica(primary, &PbftMessage::Request(request));
        env.ctx
            .set_timer(PbftTimer::ClientRetry, env.config.client_timeout);
        self.current = Some(Outstanding {
            request,
            sent_at: env.ctx.now(),
            replies: Vec::new(),
        });
    }

    pub fn on_retry(&mut self, env: &mut Env<'_, '_>) {
        let Some(current) = &self.current else {
            return;
        };
        if self.suspended {
            env.ctx
                .set_timer(PbftTimer::ClientRetry, env.config.client_timeout);
            return;
        }
        env.stats.client_retransmissions += 1;
        env.multicast(None, &PbftMessage::Request(current.request));
        env.ctx
            .set_timer(PbftTimer::ClientRetry, env.config.client_timeout);
    }

    pub fn on_reply(&mut self, env: &mut Env<'_, '_>, reply: Reply) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if reply.client != env.ctx.id() || reply.timestamp != current.request.timestamp {
            return;
        }
        if current.replies.iter().any(|&(r, _)| r == reply.replica) {
            env.stats.duplicates += 1;
            return;
        }
        current.replies.push((reply.replica, reply.result));
        self.view = self.view.max(reply.view);
        let matching = current
            .replies
            .iter()
            .filter(|&&(_, result)| result == reply.result)
            .count() as u32;
        if matching < env.roster.f() + 1 {
            return;
        }
        let done = self.current.take();
        if let Some(done) = done {
            env.ctx.cancel_timer(PbftTimer::ClientRetry);
            env.ctx.emit(PbftEvent::Completed {
                request: done.request,
                latency: env.ctx.now() - done.sent_at,
                result: reply.result,
            });
        }
        if !self.suspended
            && let Some((op, size)) = self.queue.pop_front()
        {
            self.send(env, op, size);
        }
    }
}
