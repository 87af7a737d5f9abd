//! Which slot holds the handler of each fd number: for the numbers a
//! process usually has, a table indexed by the number, as the kernel's own
//! fd table is. The kernel hands out the lowest free number, so the numbers
//! in use are small and dense, and a lookup is an index instead of a hash
//! (the registry looks an fd up several times per add and remove). Larger
//! numbers, which only a process with a raised fd limit (or a `dup2` to a
//! high number) has, go in a map, so the table never grows past
//! [`DENSE`] entries.

use std::collections::HashMap;
use std::os::fd::RawFd;

/// The fd numbers below this are looked up by index: the table takes at
/// most this many entries (512 KiB of slot keys).
const DENSE: usize = 1 << 16;

/// A map from fd numbers to `K`.
pub(crate) struct FdTable<K> {
    /// One entry per number below [`DENSE`], up to the highest inserted.
    dense: Vec<Option<K>>,
    /// The numbers from [`DENSE`] on.
    sparse: HashMap<RawFd, K>,
}

impl<K> Default for FdTable<K> {
    fn default() -> FdTable<K> {
        FdTable {
            dense: Vec::new(),
            sparse: HashMap::new(),
        }
    }
}

/// Where the entry of an fd number lives.
enum Slot {
    Dense(usize),
    Sparse,
    /// A negative number, which no entry has.
    None,
}

fn slot(fd: RawFd) -> Slot {
    match usize::try_from(fd) {
        Ok(index) if index < DENSE => Slot::Dense(index),
        Ok(_) => Slot::Sparse,
        Err(_) => Slot::None,
    }
}

impl<K: Copy> FdTable<K> {
    /// The entry of `fd`; none for a negative number.
    pub(crate) fn get(&self, fd: RawFd) -> Option<K> {
        match slot(fd) {
            Slot::Dense(index) => self.dense.get(index).copied().flatten(),
            Slot::Sparse => self.sparse.get(&fd).copied(),
            Slot::None => None,
        }
    }

    /// Sets the entry of `fd`, a number that is not negative (the registry
    /// holds only fds it accepted).
    pub(crate) fn insert(&mut self, fd: RawFd, key: K) {
        match slot(fd) {
            Slot::Dense(index) => {
                if index >= self.dense.len() {
                    self.dense.resize_with(index + 1, || None);
                }
                self.dense[index] = Some(key);
            }
            Slot::Sparse => {
                self.sparse.insert(fd, key);
            }
            Slot::None => debug_assert!(false, "negative fd {fd} in the registry"),
        }
    }

    /// Takes the entry of `fd` out.
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<K> {
        match slot(fd) {
            Slot::Dense(index) => self.dense.get_mut(index)?.take(),
            Slot::Sparse => self.sparse.remove(&fd),
            Slot::None => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{DENSE, FdTable};

    #[test]
    fn entries_are_found_by_number_and_taken_out() {
        let high = i32::try_from(DENSE).unwrap() + 5;
        let mut table = FdTable::default();
        assert_eq!(table.get(3), None, "empty");
        table.insert(3, 'a');
        table.insert(1000, 'b');
        table.insert(high, 'c');
        table.insert(i32::MAX, 'd');
        assert_eq!(
            (
                table.get(3),
                table.get(1000),
                table.get(high),
                table.get(i32::MAX)
            ),
            (Some('a'), Some('b'), Some('c'), Some('d'))
        );
        assert_eq!((table.get(4), table.get(high + 1)), (None, None));
        assert_eq!(
            (table.get(-1), table.remove(-1)),
            (None, None),
            "negative numbers"
        );
        assert_eq!(
            (table.remove(3), table.remove(high)),
            (Some('a'), Some('c'))
        );
        assert_eq!((table.get(3), table.remove(3)), (None, None), "taken out");
        assert_eq!((table.get(high), table.remove(high)), (None, None));
        assert_eq!(table.remove(5000), None, "past the end");
        table.clear();
        assert_eq!(
            (table.get(1000), table.get(i32::MAX)),
            (None, None),
            "cleared"
        );
    }

    #[test]
    fn a_high_number_does_not_grow_the_table() {
        let mut table = FdTable::default();
        table.insert(1 << 30, 1u8);
        assert!(
            table.dense.is_empty(),
            "{} dense entries",
            table.dense.len()
        );
        assert_eq!(table.get(1 << 30), Some(1));
    }
}
