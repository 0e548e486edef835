//! The iceoryx2 side of each role: publish-subscribe for the data, events for the
//! blocking variants.
//!
//! Configuration (the same on both sides; `open_or_create` checks it):
//! * `ipc::Service`; payload `[u8]` (a slice of `--size` bytes, loaned with
//!   `loan_slice_uninit`, written with one `write_from_slice`: the copy-in our writer
//!   also makes), user header `u64` (the payload's CRC-32C in `same-work`, END at the
//!   end of the stream).
//! * Lossless, like the ring: `enable_safe_overflow(false)` and the publisher's
//!   `BackpressureStrategy::RetryUntilDelivered` (a full subscriber buffer makes the
//!   publisher wait in iceoryx2's own adaptive wait: yield, then short sleeps; a
//!   backpressure handler only adds a give-up after PEER_TIMEOUT).
//! * Subscriber buffer = `--depth` (the ring's slot count for the size), history 0,
//!   1 publisher, 1 subscriber, 2 nodes, 1 loaned and 1 borrowed sample at a time,
//!   static allocation of exactly `--size` bytes per sample, payload alignment
//!   `--align` (default 1, iceoryx2's own for `[u8]`).
//! * Events (`--wait event`): one event service per direction, 1 notifier, 1 listener.

use crate::proto::{latency_fields, measured, mono_ns, payload, warmup, Res};
use crate::{Args, WaitMode, Work};
use iceoryx2::node::Node;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::{event, publish_subscribe};
use shm_common::checksum::crc32c;
use std::time::{Duration, Instant};

/// User header of the last sample of a stream (a CRC-32C is at most u32::MAX).
const END: u64 = u64::MAX;
/// How long a side waits for its peer to appear, or for the next sample, before it
/// gives up (the peer died): generous against start-up on a busy 2-CPU machine.
const PEER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest single sleep on a listener, so that a lost peer is noticed.
const EVENT_SLICE: Duration = Duration::from_millis(100);

type Ps = publish_subscribe::PortFactory<ipc::Service, [u8], u64>;
type Ev = event::PortFactory<ipc::Service>;
type Pub = Publisher<ipc::Service, [u8], u64>;
type Sub = Subscriber<ipc::Service, [u8], u64>;

/// iceoryx2's default configuration, with the root directory and the file prefix the
/// parent chose for this run (so that it can remove whatever a killed run leaves).
fn config(a: &Args) -> Res<Config> {
    let mut c = Config::default();
    if let Some(root) = &a.root {
        let mut s = root.to_str().ok_or("--root is not UTF-8")?.to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        c.global.set_root_path(&Path::new(s.as_bytes())?);
    }
    if let Some(p) = &a.prefix {
        c.global.prefix = FileName::new(p.as_bytes())?;
    }
    Ok(c)
}

fn node(a: &Args, role: &str) -> Res<Node<ipc::Service>> {
    Ok(NodeBuilder::new()
        .name(&NodeName::new(&format!("shm-bench-{role}"))?)
        .config(&config(a)?)
        // SIGINT/SIGTERM keep their default action (as for shm-bench's own children);
        // the parent removes what a killed run leaves under --root/--prefix.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

fn data_service(a: &Args, node: &Node<ipc::Service>, name: &str) -> Res<Ps> {
    let name: ServiceName = name.try_into()?;
    let align = Alignment::new(a.align).ok_or("--align must be a power of two")?;
    Ok(node
        .service_builder(&name)
        .publish_subscribe::<[u8]>()
        .user_header::<u64>()
        .payload_alignment(align)
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(a.depth)
        .subscriber_max_borrowed_samples(1)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .open_or_create()?)
}

fn event_service(node: &Node<ipc::Service>, name: &str) -> Res<Ev> {
    let name: ServiceName = name.try_into()?;
    Ok(node
        .service_builder(&name)
        .event()
        .max_notifiers(1)
        .max_listeners(1)
        .max_nodes(2)
        .open_or_create()?)
}

fn make_publisher(svc: &Ps, size: usize) -> Res<Pub> {
    Ok(svc
        .publisher_builder()
        .initial_max_slice_len(size)
        .allocation_strategy(AllocationStrategy::Static)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        // The same retrying, but a subscriber killed with its buffer full (it still
        // counts as connected) fails the send after PEER_TIMEOUT instead of never.
        .set_backpressure_handler(|info: &BackpressureInfo| {
            if info.elapsed_time > PEER_TIMEOUT {
                BackpressureAction::DiscardDataAndFail
            } else {
                BackpressureAction::Retry
            }
        })
        .create()?)
}

fn make_subscriber(svc: &Ps, depth: usize) -> Res<Sub> {
    Ok(svc.subscriber_builder().buffer_size(depth).create()?)
}

/// Polls `cond` until it holds (the peer's port exists), at most PEER_TIMEOUT.
fn wait_for(what: &str, cond: impl Fn() -> bool) -> Res<()> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > PEER_TIMEOUT {
            return Err(format!("no {what} within {PEER_TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Waits until the service has a subscriber and connects to it, so that the first
/// sample after `go` is delivered (history is 0) and no connecting is timed.
fn connect_publisher(svc: &Ps, p: &Pub) -> Res<()> {
    wait_for("subscriber", || {
        svc.dynamic_config().number_of_subscribers() > 0
    })?;
    p.update_connections()?;
    Ok(())
}

/// Waits until the service has a publisher and maps its data segment.
fn connect_subscriber(svc: &Ps, s: &Sub) -> Res<()> {
    wait_for("publisher", || {
        svc.dynamic_config().number_of_publishers() > 0
    })?;
    s.update_connections()?;
    Ok(())
}

fn connect_notifier(svc: &Ev, n: &Notifier<ipc::Service>) -> Res<()> {
    wait_for("listener", || {
        svc.dynamic_config().number_of_listeners() > 0
    })?;
    n.update_connections()?;
    Ok(())
}

/// The receiving side's wait when there is nothing to receive.
enum Idle {
    /// Spin `spin` empty polls, then yield the CPU on each further one.
    Poll { spin: u32, empty: u32 },
    /// Sleep on the listener until notified (at most EVENT_SLICE at a time).
    Event(Box<Listener<ipc::Service>>),
}

impl Idle {
    fn new(a: &Args, listener: Option<Listener<ipc::Service>>) -> Idle {
        match listener {
            Some(l) => Idle::Event(Box::new(l)),
            None => Idle::Poll {
                spin: a.spin,
                empty: 0,
            },
        }
    }

    /// Called after an empty receive.
    fn wait(&mut self) -> Res<()> {
        match self {
            Idle::Poll { spin, empty } => {
                if *empty < *spin {
                    *empty += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            Idle::Event(l) => {
                l.timed_wait(|_| {}, EVENT_SLICE)?;
            }
        }
        Ok(())
    }

    /// Called after a sample arrived.
    fn reset(&mut self) {
        if let Idle::Poll { empty, .. } = self {
            *empty = 0;
        }
    }
}

/// Notices a peer that went away: how long the receiving side has found nothing. The
/// clock is read only now and then while polling (never per sample), at every wait on
/// a listener (each is at most EVENT_SLICE long).
#[derive(Default)]
struct Silence {
    empty: u32,
    since: Option<Instant>,
}

impl Silence {
    /// Called after an empty receive; fails after PEER_TIMEOUT of nothing.
    fn check(&mut self, idle: &Idle, what: &str) -> Res<()> {
        self.empty = self.empty.wrapping_add(1);
        if matches!(idle, Idle::Poll { .. }) && self.empty % 4096 != 0 {
            return Ok(());
        }
        match self.since {
            None => self.since = Some(Instant::now()),
            Some(t) if t.elapsed() > PEER_TIMEOUT => {
                return Err(format!("no {what} for {PEER_TIMEOUT:?}: the peer is gone").into())
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Sends one `len`-byte sample: `data` (or filler for the END marker), header `hdr`.
fn send(p: &Pub, data: &[u8], hdr: u64) -> Res<()> {
    let mut s = p
        .loan_slice_uninit(data.len())
        .map_err(|e| format!("loan: {e}"))?;
    *s.user_header_mut() = hdr;
    s.write_from_slice(data).send().map_err(|e| {
        format!("send: {e} (a full buffer for {PEER_TIMEOUT:?}: the subscriber is gone?)")
    })?;
    Ok(())
}

/// Streaming sender: `--size`-byte samples for `--secs`, then one END sample.
pub fn publisher(a: &Args) -> Res<()> {
    let node = node(a, "publisher")?;
    let svc = data_service(a, &node, &a.service)?;
    let p = make_publisher(&svc, a.size)?;
    let notify = match a.wait {
        WaitMode::Event => {
            let ev = event_service(&node, &format!("{}/ev", a.service))?;
            let n = ev.notifier_builder().create()?;
            connect_notifier(&ev, &n)?;
            Some((ev, n))
        }
        WaitMode::Poll => None,
    };
    connect_publisher(&svc, &p)?;
    let buf = payload(a.size);
    let every = a.notify_every.max(1);
    // Check the clock every few samples, as shm-bench's stream producer does.
    let per_check = ((256 << 10) / a.size).clamp(1, 64) as u64;
    let secs_ns = (a.secs * 1e9) as u64;
    measured(|t0| {
        let deadline = t0 + secs_ns;
        let mut sent = 0u64;
        while mono_ns() < deadline {
            for _ in 0..per_check {
                // The checksum our writer computes per frame, carried in the user header.
                let hdr = match a.work {
                    // black_box: computed for every sample, never hoisted out of the loop.
                    Work::SameWork => u64::from(crc32c(std::hint::black_box(&buf))),
                    Work::Touch => 0,
                };
                send(&p, &buf, hdr)?;
                sent += 1;
                if let Some((_, n)) = &notify {
                    if sent % every == 0 {
                        n.notify()?;
                    }
                }
            }
        }
        send(&p, &buf[..1], END)?;
        if let Some((_, n)) = &notify {
            n.notify()?;
        }
        Ok((sent, sent * a.size as u64, Vec::new()))
    })
}

/// Streaming receiver: takes samples until END, doing `--work` on each.
pub fn subscriber(a: &Args) -> Res<()> {
    let node = node(a, "subscriber")?;
    let svc = data_service(a, &node, &a.service)?;
    let s = make_subscriber(&svc, a.depth)?;
    let (_ev, listener) = match a.wait {
        WaitMode::Event => {
            let ev = event_service(&node, &format!("{}/ev", a.service))?;
            let l = ev.listener_builder().create()?;
            (Some(ev), Some(l))
        }
        WaitMode::Poll => (None, None),
    };
    connect_subscriber(&svc, &s)?;
    let mut idle = Idle::new(a, listener);
    // The private copy of `same-work`, allocated once (our reader reuses its buffer).
    let mut copy: Vec<u8> = Vec::with_capacity(a.size);
    measured(|_| {
        let (mut frames, mut bytes, mut sink) = (0u64, 0u64, 0u32);
        let mut silence = Silence::default();
        loop {
            let Some(sample) = s.receive()? else {
                silence.check(&idle, "sample")?;
                idle.wait()?;
                continue;
            };
            silence = Silence::default();
            idle.reset();
            let hdr = *sample.user_header();
            if hdr == END {
                break;
            }
            let n = sample.payload().len();
            match a.work {
                Work::Touch => {
                    sink ^= crc32c(sample.payload());
                    drop(sample);
                }
                Work::SameWork => {
                    copy.clear();
                    copy.extend_from_slice(sample.payload());
                    drop(sample);
                    let crc = crc32c(&copy);
                    if u64::from(crc) != hdr {
                        return Err(format!("sample {frames}: CRC-32C mismatch").into());
                    }
                }
            }
            frames += 1;
            bytes += n as u64;
        }
        std::hint::black_box(sink);
        Ok((frames, bytes, Vec::new()))
    })
}

/// One direction of a ping-pong: data out (and a notifier in event mode), data in (and a
/// listener). `out`/`inp` name the two directions' services.
struct Pair {
    out_svc: Ps,
    p: Pub,
    _in_svc: Ps,
    s: Sub,
    notifier: Option<(Ev, Notifier<ipc::Service>)>,
    idle: Idle,
    // Dropped last: every port and service above belongs to it.
    _node: Node<ipc::Service>,
}

fn pair(a: &Args, role: &str, out: &str, inp: &str) -> Res<Pair> {
    let node = node(a, role)?;
    let out_svc = data_service(a, &node, &format!("{}/{out}", a.service))?;
    let in_svc = data_service(a, &node, &format!("{}/{inp}", a.service))?;
    let p = make_publisher(&out_svc, a.size)?;
    let s = make_subscriber(&in_svc, a.depth)?;
    let (notifier, listener) = match a.wait {
        WaitMode::Event => {
            let out_ev = event_service(&node, &format!("{}/{out}-ev", a.service))?;
            let in_ev = event_service(&node, &format!("{}/{inp}-ev", a.service))?;
            let n = out_ev.notifier_builder().create()?;
            let l = in_ev.listener_builder().create()?;
            connect_notifier(&out_ev, &n)?;
            (Some((out_ev, n)), Some(l))
        }
        WaitMode::Poll => (None, None),
    };
    connect_publisher(&out_svc, &p)?;
    connect_subscriber(&in_svc, &s)?;
    let idle = Idle::new(a, listener);
    Ok(Pair {
        out_svc,
        p,
        _in_svc: in_svc,
        s,
        notifier,
        idle,
        _node: node,
    })
}

impl Pair {
    fn send(&self, data: &[u8], hdr: u64) -> Res<()> {
        send(&self.p, data, hdr)?;
        if let Some((_, n)) = &self.notifier {
            n.notify()?;
        }
        Ok(())
    }

    /// Waits for the next sample; `None` at END. Copies it into `into`.
    fn recv(&mut self, into: &mut Vec<u8>) -> Res<Option<()>> {
        let mut silence = Silence::default();
        loop {
            if let Some(sample) = self.s.receive()? {
                self.idle.reset();
                if *sample.user_header() == END {
                    return Ok(None);
                }
                into.clear();
                into.extend_from_slice(sample.payload());
                return Ok(Some(()));
            }
            silence.check(&self.idle, "reply")?;
            self.idle.wait()?;
        }
    }

    /// Whether the peer's subscriber is still there (for a clean END at the end).
    fn peer_present(&self) -> bool {
        self.out_svc.dynamic_config().number_of_subscribers() > 0
    }
}

/// Ping: sends a `--size`-byte message, waits for the echo, `--iters` times after a
/// warm-up; reports round-trip percentiles.
pub fn ping(a: &Args) -> Res<()> {
    let mut pp = pair(a, "ping", "ping", "pong")?;
    let msg = payload(a.size);
    let mut back = Vec::with_capacity(a.size);
    measured(|_| {
        let mut rtt = Vec::with_capacity(a.iters as usize);
        for i in 0..warmup(a.iters) + a.iters {
            let t = Instant::now();
            pp.send(&msg, 0)?;
            if pp.recv(&mut back)?.is_none() {
                return Err("pong ended early".into());
            }
            if i >= warmup(a.iters) {
                rtt.push(t.elapsed().as_nanos() as u64);
            }
        }
        if pp.peer_present() {
            pp.send(&msg[..1], END)?;
        }
        let n = u64::from(a.iters);
        Ok((n, n * a.size as u64, latency_fields(rtt)))
    })
}

/// Pong: echoes every message until the ping's END.
pub fn pong(a: &Args) -> Res<()> {
    let mut pp = pair(a, "pong", "pong", "ping")?;
    let mut buf = Vec::with_capacity(a.size);
    measured(|_| {
        let mut n = 0u64;
        while pp.recv(&mut buf)?.is_some() {
            pp.send(&buf, 0)?;
            n += 1;
        }
        Ok((n, n * a.size as u64, Vec::new()))
    })
}
