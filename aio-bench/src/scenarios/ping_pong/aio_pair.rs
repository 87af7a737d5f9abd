//! The aio variants, in every form: an [`AioContext`] on each thread, the
//! partner answering each message it receives over its [`Link`], the home
//! side counting the answers. The form only chooses the links and the
//! polling parameters.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use aio::prelude::*;

use super::harness::{Lifeline, Partner, PingPong, ready};
use super::link::Link;
use crate::env::{Cpus, Monitor};

/// An aio loop on each side.
pub(super) struct AioPair {
    ctx: AioContext,
    tx: Link,
    rx: Link,
    got: Rc<Cell<u64>>,
    // Declared after the context: dropped (stopped) after it is.
    partner: Partner,
}

impl AioPair {
    pub(super) fn new(
        cpus: &Cpus,
        monitor: Monitor,
        params: PollParams,
        links: [Link; 2],
    ) -> io::Result<AioPair> {
        let [to_partner, to_home] = links;
        let life = Arc::new(Lifeline::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (rx, tx, life) = (to_partner.clone(), to_home.clone(), Arc::clone(&life));
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| -> io::Result<()> {
                    let ctx = monitor.context(params)?;
                    let reply = tx.clone();
                    rx.install(&ctx, move || {
                        let _ = reply.send();
                    })?;
                    let _ = ready_tx.send(Ok(()));
                    while !life.stopping() {
                        ctx.poll(true)?;
                    }
                    Ok(())
                })();
                if let Err(e) = &result {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                life.died(result, || {
                    let _ = tx.send();
                });
            })?
        };
        let wake = {
            let link = to_partner.clone();
            Box::new(move || {
                let _ = link.send();
            })
        };
        let partner = Partner {
            life,
            wake,
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let ctx = monitor.context(params)?;
        let got = Rc::new(Cell::new(0));
        let count = Rc::clone(&got);
        to_home.install(&ctx, move || count.set(count.get() + 1))?;
        Ok(AioPair {
            ctx,
            tx: to_partner,
            rx: to_home,
            got,
            partner,
        })
    }
}

impl PingPong for AioPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            let before = self.got.get();
            self.tx.send()?;
            while self.got.get() == before {
                self.partner.life.check()?;
                self.ctx.poll(true)?;
            }
        }
        Ok(())
    }

    fn counters(&self) -> [u64; 3] {
        let s = self.ctx.stats();
        [
            s.blocking_waits,
            s.poll_hits,
            self.tx.writes() + self.rx.writes(),
        ]
    }
}
