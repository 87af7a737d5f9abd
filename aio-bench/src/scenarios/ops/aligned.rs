//! A buffer aligned to 4 KiB, as `O_DIRECT` reads need: zeroed at
//! allocation, so that it can also be read as a slice.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ptr::NonNull;

/// The alignment: a page, which satisfies every block device's.
const ALIGN: usize = 4096;

/// `len` bytes at a 4 KiB boundary.
pub(super) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    pub(super) fn new(len: usize) -> AlignedBuf {
        let layout = Self::layout(len);
        // SAFETY: the layout's size is not zero (at least one page).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(ALIGN), ALIGN).expect("a page-aligned layout")
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The whole buffer as bytes (zeroed at allocation: always initialised).
    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes, allocated and zeroed by `new`, owned by
        // this buffer, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

// SAFETY: the block is allocated once and never moves or shrinks while
// the buffer lives; all `len` bytes are writable (and initialised).
unsafe impl aio::IoBufMut for AlignedBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn capacity(&self) -> usize {
        self.len
    }
    /// As a `Box<[u8]>`: the length stays; the count says what is new.
    unsafe fn set_filled(&mut self, _n: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_page_aligned_and_zeroed() {
        let mut buf = AlignedBuf::new(4096);
        assert_eq!(buf.as_mut_ptr() as usize % ALIGN, 0);
        assert!(buf.as_mut_slice().iter().all(|&b| b == 0));
    }
}
