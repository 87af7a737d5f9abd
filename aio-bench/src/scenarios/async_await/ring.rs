//! The ring form: async ping-pong over shared memory with a partner
//! thread, served through a poll source (aio-async) or a `Notify` (tokio).

use super::*;

/// The shared memory of a ring ping-pong: the home side bumps `ping`, the
/// partner answers by copying it to `pong`, and notifies the home side
/// (its way) if `wants_notify` says so.
#[derive(Default)]
struct Mailbox {
    ping: AtomicU64,
    pong: AtomicU64,
    wants_notify: AtomicBool,
    /// Set while a batch runs; the partner parks otherwise.
    active: AtomicBool,
    stop: AtomicBool,
}

impl Mailbox {
    /// Whether the partner has answered every ping. SeqCst: with the
    /// partner's store of `pong` and load of `wants_notify`, and the home
    /// side's store of `wants_notify` (poll_end), either the last check
    /// before the home side blocks sees the answer or the partner sees that
    /// it must notify.
    fn answered(&self) -> bool {
        self.pong.load(Ordering::SeqCst) == self.ping.load(Ordering::Relaxed)
    }

    fn send(&self) {
        self.ping.fetch_add(1, Ordering::SeqCst);
    }
}

/// The partner of a ring ping-pong: spins on `ping` while a batch runs.
struct RingPartner {
    mailbox: Arc<Mailbox>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RingPartner {
    fn spawn(
        env: &Env<'_>,
        i: usize,
        wants_notify: bool,
        notify: impl Fn() + Send + 'static,
    ) -> io::Result<RingPartner> {
        let mailbox = Arc::new(Mailbox::default());
        mailbox.wants_notify.store(wants_notify, Ordering::SeqCst);
        let m = Arc::clone(&mailbox);
        let thread = env.cpus.spawn_partner(i, "async-ring", move || {
            while !m.stop.load(Ordering::Acquire) {
                if !m.active.load(Ordering::Acquire) {
                    std::thread::park();
                    continue;
                }
                let ping = m.ping.load(Ordering::SeqCst);
                if ping != m.pong.load(Ordering::Relaxed) {
                    m.pong.store(ping, Ordering::SeqCst);
                    if m.wants_notify.load(Ordering::SeqCst) {
                        notify();
                    }
                }
                std::hint::spin_loop();
            }
        })?;
        Ok(RingPartner {
            mailbox,
            thread: Some(thread),
        })
    }

    /// Wakes the partner for a batch: `f` runs while it spins.
    fn batch<R>(&self, f: impl FnOnce(&Mailbox) -> R) -> R {
        self.mailbox.active.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        let r = f(&self.mailbox);
        self.mailbox.active.store(false, Ordering::Release);
        r
    }
}

impl Drop for RingPartner {
    fn drop(&mut self) {
        self.mailbox.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Untimed round trips at the start of each ring batch: the partner is
/// awake and spinning before the clock starts.
const RING_WARM_UP: u64 = 64;

/// aio-async's side of the ring ping-pong: a task awaits a poll source
/// whose check is the mailbox.
fn aio_ring_trips(
    rt: &Runtime,
    source: &PollSource,
    partner: &RingPartner,
    n: u64,
) -> io::Result<Duration> {
    partner.batch(|m| {
        rt.block_on(async {
            let mut start = Instant::now();
            for i in 0..RING_WARM_UP + n {
                if i == RING_WARM_UP {
                    start = Instant::now();
                }
                m.send();
                source.ready().await?;
            }
            Ok(start.elapsed())
        })?
    })
}

pub(super) fn ring_group(env: &Env<'_>) -> io::Result<Group> {
    let id = RING;
    let title = "async: ping-pong over shared memory, partner thread spinning";
    // aio-async: a poll source whose hooks turn the partner's notifications
    // off while the loop polls.
    let aio = if env.wants(POLLING) {
        let rt = Runtime::new(Monitor::Auto.context(RING_POLL)?);
        let notifier: Arc<std::sync::OnceLock<Arc<aio::EventNotifier>>> = Arc::default();
        let n = Arc::clone(&notifier);
        let partner = RingPartner::spawn(env, 0, true, move || {
            if let Some(n) = n.get() {
                let _ = n.set();
            }
        })?;
        let (check, begin, end) = (
            Arc::clone(&partner.mailbox),
            Arc::clone(&partner.mailbox),
            Arc::clone(&partner.mailbox),
        );
        let source = PollSource::new(move || check.answered())?
            .on_poll_begin(move || begin.wants_notify.store(false, Ordering::SeqCst))
            .on_poll_end(move || end.wants_notify.store(true, Ordering::SeqCst));
        let _ = notifier.set(source.notifier());
        Some((rt, source, partner))
    } else {
        None
    };
    // tokio: a task woken by `Notify`, which the partner always notifies.
    let tokio_rt = tokio_runtime()?;
    let tokio_side = if env.wants(REFERENCE) {
        let notify = Arc::new(tokio::sync::Notify::new());
        let n = Arc::clone(&notify);
        let partner = RingPartner::spawn(env, 1, true, move || n.notify_one())?;
        Some((notify, partner))
    } else {
        None
    };
    // The spin floor: the home thread spins on the mailbox itself.
    let spin = if env.wants(SPIN_FLOOR) {
        Some(RingPartner::spawn(env, 2, false, || {})?)
    } else {
        None
    };
    let mut variants: Vec<Variant<'_>> = Vec::new();
    if let Some((rt, source, partner)) = &aio {
        variants.push(
            Variant::self_timed(POLLING, move |n| aio_ring_trips(rt, source, partner, n))
                .expect_no_allocs(),
        );
    }
    if let Some((notify, partner)) = &tokio_side {
        let rt = &tokio_rt;
        variants.push(Variant::self_timed(REFERENCE, move |n| {
            partner.batch(|m| {
                rt.block_on(async {
                    let mut start = Instant::now();
                    for i in 0..RING_WARM_UP + n {
                        if i == RING_WARM_UP {
                            start = Instant::now();
                        }
                        m.send();
                        while !m.answered() {
                            notify.notified().await;
                        }
                    }
                    Ok(start.elapsed())
                })
            })
        }));
    }
    if let Some(partner) = &spin {
        variants.push(
            Variant::self_timed(SPIN_FLOOR, move |n| {
                partner.batch(|m| {
                    let mut start = Instant::now();
                    for i in 0..RING_WARM_UP + n {
                        if i == RING_WARM_UP {
                            start = Instant::now();
                        }
                        m.send();
                        while !m.answered() {
                            std::hint::spin_loop();
                        }
                    }
                    Ok(start.elapsed())
                })
            })
            .expect_no_allocs(),
        );
    }
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    drop((aio, tokio_side, spin));
    let notes = vec![
        format!(
            "{POLLING}: a PollSource on the mailbox, polling max {} ns, notifier only while the \
             loop is not polling (virtio style); {REFERENCE}: Notify::notify_one on every answer; \
             {SPIN_FLOOR}: both threads spin",
            RING_POLL.max_ns
        ),
        format!("each batch starts with {RING_WARM_UP} untimed round trips"),
    ];
    Ok(Group::new(
        id,
        title,
        "ns per round trip",
        SPIN_FLOOR,
        rows,
        notes,
    ))
}
