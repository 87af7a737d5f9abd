//! The handler registry: which node serves which fd, the token of each
//! registration, and what the monitor must be told about it.
//!
//! Tokens are slot-map keys (an index and a version), so a token of a removed
//! or replaced handler stops resolving the moment the handler leaves.

use std::os::fd::RawFd;
use std::rc::Rc;

use slotmap::{DefaultKey, Key, KeyData, SlotMap};

use crate::fd_table::FdTable;
use crate::handler::Node;
use crate::monitor::{Interest, Registration, Token};
use crate::ops::OP_BIT;

#[derive(Default)]
pub(crate) struct Registry {
    nodes: SlotMap<DefaultKey, Rc<Node>>,
    by_fd: FdTable<DefaultKey>,
    /// Nesting count of `disable_external`.
    external_disabled: u32,
    /// Handlers that the monitor watches and that have no `poll` callback:
    /// while there is one, busy polling on a monitor that cannot see
    /// readiness in user space would starve it.
    watched_without_poll: usize,
    /// Watched handlers that are not on the polled list (those without a
    /// `poll` callback included): while there is none, every watched fd's
    /// work shows in some `poll` callback.
    watched_unlisted: usize,
}

impl Registry {
    /// The node registered for `fd`.
    pub(crate) fn by_fd(&self, fd: RawFd) -> Option<&Rc<Node>> {
        self.by_fd.get(fd).and_then(|key| self.nodes.get(key))
    }

    /// The node a token was issued for, if it is still registered.
    pub(crate) fn by_token(&self, token: Token) -> Option<&Rc<Node>> {
        self.key(token).and_then(|key| self.nodes.get(key))
    }

    /// The slot-map key behind `token`. Tokens leave out the key's top bit
    /// (operations' ids have it, so that the two can share a ring's
    /// `user_data`), so both keys it can stand for are tried, and the node
    /// found must hold that very token.
    fn key(&self, token: Token) -> Option<DefaultKey> {
        [token.0, token.0 | OP_BIT]
            .into_iter()
            .map(|ffi| DefaultKey::from(KeyData::from_ffi(ffi)))
            .find(|key| self.nodes.get(*key).is_some_and(|n| n.token() == token))
    }

    /// Gives a node filled by `fill` a fresh token without registering it
    /// for its fd yet: the monitor is told first, then the registration is
    /// [committed](Self::commit) or [abandoned](Self::abandon). The node
    /// is filled in `spare` (an emptied node that nothing else holds) if
    /// there is one, so that it costs no allocation.
    pub(crate) fn reserve(
        &mut self,
        fill: impl FnOnce(&mut Node, Token),
        spare: Option<Rc<Node>>,
    ) -> Rc<Node> {
        let key = self.nodes.insert_with_key(|key| {
            if let Some(mut node) = spare
                && let Some(slot) = Rc::get_mut(&mut node)
            {
                fill(slot, token_of(key));
                return node;
            }
            let mut node = Node::vacant();
            fill(&mut node, token_of(key));
            Rc::new(node)
        });
        Rc::clone(&self.nodes[key])
    }

    /// Makes a reserved node the handler of its fd; returns the node that
    /// the fd had before, now marked deleted.
    pub(crate) fn commit(&mut self, node: &Rc<Node>) -> Option<Rc<Node>> {
        let old = self.remove(node.fd);
        if let Some(key) = self.key(node.token()) {
            self.by_fd.insert(node.fd, key);
        }
        self.count(node, 1);
        old
    }

    /// Forgets a reserved node that the monitor refused.
    pub(crate) fn abandon(&mut self, node: &Rc<Node>) {
        if let Some(key) = self.key(node.token()) {
            self.nodes.remove(key);
        }
        node.deleted.set(true);
    }

    /// A second token for a registered node, for a change of interest that
    /// the monitor has yet to accept; [`rekey`](Self::rekey) moves the
    /// node to it, or [`release`](Self::release) gives it back. A slot map
    /// reuses freed slots, so this does not allocate in a steady state.
    pub(crate) fn reserve_token(&mut self, node: &Rc<Node>) -> Token {
        token_of(self.nodes.insert(Rc::clone(node)))
    }

    /// Gives back a reserved token (the node still holds its own).
    pub(crate) fn release(&mut self, token: Token) {
        let key = [token.0, token.0 | OP_BIT]
            .into_iter()
            .map(|ffi| DefaultKey::from(KeyData::from_ffi(ffi)))
            .find(|key| self.nodes.contains_key(*key));
        if let Some(key) = key {
            self.nodes.remove(key);
        }
    }

    /// What the monitor would hold for `node` watching for `interest` under
    /// `token`.
    pub(crate) fn registration_as(
        &self,
        node: &Node,
        interest: Interest,
        token: Token,
    ) -> Option<Registration> {
        self.watches(interest, node.is_external())
            .then_some(Registration { token, interest })
    }

    /// Whether the monitor would watch a handler of `interest`: not if it
    /// asks for nothing, or is external while external handlers are
    /// disabled.
    pub(crate) fn watches(&self, interest: Interest, external: bool) -> bool {
        let held_back = external && self.external_disabled > 0;
        !(interest.is_empty() || held_back)
    }

    /// Moves `node` to `interest` and the reserved `token`; its old token
    /// stops resolving.
    pub(crate) fn rekey(&mut self, node: &Rc<Node>, interest: Interest, token: Token) {
        self.count(node, -1);
        if let Some(key) = self.key(node.token()) {
            self.nodes.remove(key);
        }
        node.set_interest(interest, token);
        if let Some(key) = self.key(token) {
            self.by_fd.insert(node.fd, key);
        }
        self.count(node, 1);
    }

    /// Unregisters `fd`; returns its node, now marked deleted.
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<Rc<Node>> {
        let key = self.by_fd.remove(fd)?;
        let node = self.nodes.remove(key)?;
        self.count(&node, -1);
        node.deleted.set(true);
        Some(node)
    }

    /// What the monitor holds for `node`: nothing if it watches for nothing
    /// or is an external handler while external handlers are disabled.
    pub(crate) fn registration(&self, node: &Node) -> Option<Registration> {
        self.registration_as(node, node.interest(), node.token())
    }

    pub(crate) fn external_disabled(&self) -> u32 {
        self.external_disabled
    }

    /// Changes the `disable_external` count. Returns the external nodes whose
    /// registration changes (when the count leaves or reaches zero).
    pub(crate) fn set_external_disabled(&mut self, count: u32) -> Vec<Rc<Node>> {
        let toggles = (self.external_disabled == 0) != (count == 0);
        let externals: Vec<Rc<Node>> = if toggles {
            self.nodes
                .values()
                .filter(|n| n.is_external())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        for node in &externals {
            self.count(node, -1);
        }
        self.external_disabled = count;
        for node in &externals {
            self.count(node, 1);
        }
        externals
    }

    /// Whether every watched handler can be busy-polled through its own
    /// `poll` callback.
    pub(crate) fn all_watched_have_poll(&self) -> bool {
        self.watched_without_poll == 0
    }

    /// Whether every watched handler is on the polled list.
    pub(crate) fn all_watched_listed(&self) -> bool {
        self.watched_unlisted == 0
    }

    /// Puts `node` on or off the polled list, keeping the counts right.
    pub(crate) fn set_listed(&mut self, node: &Node, listed: bool) {
        let registered = !node.deleted.get();
        if registered {
            self.count(node, -1);
        }
        node.polled.listed.set(listed);
        if registered {
            self.count(node, 1);
        }
    }

    /// Every registered node.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Rc<Node>> {
        self.nodes.values()
    }

    /// Removes every node (the context is being dropped).
    pub(crate) fn drain(&mut self) -> Vec<Rc<Node>> {
        self.by_fd.clear();
        self.watched_without_poll = 0;
        self.watched_unlisted = 0;
        let nodes: Vec<Rc<Node>> = self.nodes.drain().map(|(_, node)| node).collect();
        for node in &nodes {
            node.deleted.set(true);
        }
        nodes
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    fn count(&mut self, node: &Node, delta: isize) {
        let watched = self.registration(node).is_some() && node.counts_as_progress();
        if watched && !node.has_poll() {
            self.watched_without_poll = self.watched_without_poll.saturating_add_signed(delta);
        }
        if watched && !node.polled.listed.get() {
            self.watched_unlisted = self.watched_unlisted.saturating_add_signed(delta);
        }
    }
}

/// The token of a slot-map key: the key without its top bit.
fn token_of(key: DefaultKey) -> Token {
    Token(key.data().as_ffi() & !OP_BIT)
}
