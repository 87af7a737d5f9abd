//! Which slot holds the handler of each fd number: a table indexed by the
//! number, as the kernel's own fd table is. The kernel hands out the lowest
//! free number, so the numbers in use are small and dense, and a lookup is
//! an index instead of a hash (the registry looks an fd up several times
//! per add and remove).

use std::os::fd::RawFd;

/// A map from fd numbers to `K`, one entry per number up to the highest
/// one inserted.
pub(crate) struct FdTable<K> {
    entries: Vec<Option<K>>,
}

impl<K> Default for FdTable<K> {
    fn default() -> FdTable<K> {
        FdTable {
            entries: Vec::new(),
        }
    }
}

impl<K: Copy> FdTable<K> {
    /// The entry of `fd`; none for a negative number.
    pub(crate) fn get(&self, fd: RawFd) -> Option<K> {
        let index = usize::try_from(fd).ok()?;
        self.entries.get(index).copied().flatten()
    }

    /// Sets the entry of `fd`, a number that is not negative (the registry
    /// holds only fds it accepted), growing the table to it if need be.
    pub(crate) fn insert(&mut self, fd: RawFd, key: K) {
        let Ok(index) = usize::try_from(fd) else {
            debug_assert!(false, "negative fd {fd} in the registry");
            return;
        };
        if index >= self.entries.len() {
            self.entries.resize_with(index + 1, || None);
        }
        self.entries[index] = Some(key);
    }

    /// Takes the entry of `fd` out.
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<K> {
        let index = usize::try_from(fd).ok()?;
        self.entries.get_mut(index)?.take()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::FdTable;

    #[test]
    fn entries_are_found_by_number_and_taken_out() {
        let mut table = FdTable::default();
        assert_eq!(table.get(3), None, "empty");
        table.insert(3, 'a');
        table.insert(1000, 'b');
        assert_eq!(
            (table.get(3), table.get(1000), table.get(4)),
            (Some('a'), Some('b'), None)
        );
        assert_eq!(
            (table.get(-1), table.remove(-1)),
            (None, None),
            "negative numbers"
        );
        assert_eq!(table.remove(3), Some('a'));
        assert_eq!((table.get(3), table.remove(3)), (None, None), "taken out");
        assert_eq!(table.remove(5000), None, "past the end");
        table.clear();
        assert_eq!(table.get(1000), None, "cleared");
    }
}
