//! The context's operations in flight: a slab of slots with generations,
//! the engine each went to, and the boxes of finished operations kept for
//! reuse by type, so that a steady state allocates nothing.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use super::request::{OpCompletion, OpId, OpRequest};
use crate::AioContext;

/// What an operation does between its requests: the request to send, what
/// a result means (go on, or done), and the callback with the outcome.
pub(crate) trait OpLogic: 'static {
    /// The request for what remains to be done.
    fn request(&mut self) -> OpRequest;
    /// Takes one result in; whether the operation is done.
    fn step(&mut self, result: i32) -> Step;
    /// Gives the outcome (and the buffer) back to the caller.
    fn finish(self, ctx: &AioContext);
}

/// What one result leaves an operation with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send [`OpLogic::request`] again (a short transfer, `EAGAIN`).
    Again,
    /// Done: [`OpLogic::finish`] may run.
    Done,
}

/// An operation of some type, behind one object type for the slab.
pub(crate) trait Pending {
    fn request(&mut self) -> OpRequest;
    fn step(&mut self, result: i32) -> Step;
    /// Runs the callback; the box is empty afterwards, ready for reuse.
    fn finish(&mut self, ctx: &AioContext);
    fn as_any(&mut self) -> &mut dyn Any;
    /// The concrete type, which reuse goes by.
    fn type_key(&self) -> TypeId;
}

/// The box an operation of type `T` lives in; `None` once it finished.
struct Holder<T>(Option<T>);

impl<T: OpLogic> Pending for Holder<T> {
    fn request(&mut self) -> OpRequest {
        self.0.as_mut().expect("a live operation").request()
    }
    fn step(&mut self, result: i32) -> Step {
        self.0.as_mut().map_or(Step::Done, |op| op.step(result))
    }
    fn finish(&mut self, ctx: &AioContext) {
        if let Some(op) = self.0.take() {
            op.finish(ctx);
        }
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn type_key(&self) -> TypeId {
        TypeId::of::<Holder<T>>()
    }
}

/// Which engine an operation went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The monitor's own (io_uring's ring).
    Monitor,
    /// The context's fallback engine (the thread pool).
    Fallback,
    /// Neither could take it: it completes with its error at the next
    /// iteration.
    Refused,
}

struct Slot {
    generation: u32,
    op: Option<Box<dyn Pending>>,
    route: Route,
    /// Cancelled by its owner: what would send the rest of a short
    /// transfer (or try an `EAGAIN` again) ends the operation instead.
    cancelled: bool,
}

/// The slab.
#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    spare: HashMap<TypeId, Vec<Box<dyn Pending>>, BuildHasherDefault<TypeIdHasher>>,
    in_flight: usize,
}

impl Table {
    /// Puts `op` in a free slot (in a reused box if one of its type is
    /// spare) and returns its id.
    pub(crate) fn insert<T: OpLogic>(&mut self, op: T, route: Route) -> io::Result<OpId> {
        let boxed = match self
            .spare
            .get_mut(&TypeId::of::<Holder<T>>())
            .and_then(Vec::pop)
        {
            Some(mut spare) => {
                if let Some(holder) = spare.as_any().downcast_mut::<Holder<T>>() {
                    holder.0 = Some(op);
                }
                spare
            }
            None => Box::new(Holder(Some(op))),
        };
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "2^32 operations in flight")
                })?;
                self.slots.push(Slot {
                    generation: 0,
                    op: None,
                    route,
                    cancelled: false,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.op = Some(boxed);
        slot.route = route;
        slot.cancelled = false;
        self.in_flight += 1;
        Ok(OpId::new(index, slot.generation))
    }

    /// The request of operation `id`, if it is in flight.
    pub(crate) fn request(&mut self, id: OpId) -> Option<(OpRequest, Route)> {
        let slot = self.live(id)?;
        let route = slot.route;
        slot.op.as_mut().map(|op| (op.request(), route))
    }

    /// Where operation `id` went, if it is in flight.
    pub(crate) fn route(&mut self, id: OpId) -> Option<Route> {
        self.live(id).map(|slot| slot.route)
    }

    pub(crate) fn set_route(&mut self, id: OpId, route: Route) {
        if let Some(slot) = self.live(id) {
            slot.route = route;
        }
    }

    /// Marks operation `id` cancelled, if it is in flight.
    pub(crate) fn cancel(&mut self, id: OpId) {
        if let Some(slot) = self.live(id) {
            slot.cancelled = true;
        }
    }

    /// Feeds `completion` to its operation: `Some(Step)` if it was in
    /// flight (a stale completion, of a slot reused since, is `None`). A
    /// cancelled operation that would go on (the rest of a short transfer,
    /// an `EAGAIN`) takes `ECANCELED` instead and is done: its owner asked
    /// for it to stop, and the rest might never come (a pipe's writer that
    /// waits for the cancellation to take effect).
    pub(crate) fn step(&mut self, completion: OpCompletion) -> Option<Step> {
        let slot = self.live(completion.id)?;
        let cancelled = slot.cancelled;
        let op = slot.op.as_mut()?;
        match op.step(completion.result) {
            Step::Again if cancelled => Some(op.step(-libc::ECANCELED)),
            step => Some(step),
        }
    }

    /// Takes a finished operation out; its slot is free for a new one.
    pub(crate) fn remove(&mut self, id: OpId) -> Option<Box<dyn Pending>> {
        let slot = self.live(id)?;
        let op = slot.op.take()?;
        slot.generation = slot.generation.wrapping_add(1) & 0x3fff_ffff;
        self.free.push(id.index());
        self.in_flight -= 1;
        Some(op)
    }

    /// Keeps an emptied box for the next operation of its type.
    pub(crate) fn recycle(&mut self, op: Box<dyn Pending>) {
        self.spare.entry(op.type_key()).or_default().push(op);
    }

    /// The operations in flight that went to `route`.
    pub(crate) fn ids(&self, route: Route) -> impl Iterator<Item = OpId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(move |(_, slot)| slot.op.is_some() && slot.route == route)
            .map(|(index, slot)| OpId::new(index as u32, slot.generation))
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Forgets the operations that went to `route` without freeing their
    /// buffers, which an engine that can no longer say when it is done
    /// with them might still write to; their callbacks never run.
    pub(crate) fn leak(&mut self, route: Route) {
        let ids: Vec<OpId> = self.ids(route).collect();
        for id in ids {
            if let Some(op) = self.remove(id) {
                std::mem::forget(op);
            }
        }
    }

    fn live(&mut self, id: OpId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index() as usize)
            .filter(|slot| slot.generation == id.generation() && slot.op.is_some())
    }
}

/// The hasher of the spare boxes' map: a `TypeId` is a hash already, so
/// its bits are taken as they are; SipHash would cost two hashes per
/// operation (its box taken, its box kept) for nothing.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}
