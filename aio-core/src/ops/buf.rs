//! The buffers that operations take and give back: owned, so that nothing
//! else can touch them while the kernel or a worker may.

/// A buffer an operation reads from (a write's data).
///
/// # Safety
///
/// `as_ptr` must point to `len()` initialised bytes that stay valid, and
/// unchanged, for as long as the buffer is neither moved out of nor
/// mutated (the core holds it in place while the operation runs).
pub unsafe trait IoBuf: 'static {
    /// The start of the bytes.
    fn as_ptr(&self) -> *const u8;
    /// How many bytes.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A buffer an operation writes into (a read's destination). A `Vec<u8>`
/// is filled from its start up to its capacity, and its length becomes the
/// number of bytes read; a `Box<[u8]>` is filled from its start and keeps
/// its length (the count says how much is new).
///
/// # Safety
///
/// `as_mut_ptr` must point to `capacity()` writable bytes that stay valid
/// while the buffer is held in place, and [`set_filled`](IoBufMut::set_filled)
/// may rely on the first `n` of them having been written.
pub unsafe trait IoBufMut: 'static {
    /// The start of the writable bytes.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// How many bytes may be written.
    fn capacity(&self) -> usize;
    /// Records that the first `n` bytes were written (`n <= capacity()`).
    ///
    /// # Safety
    ///
    /// The first `n` bytes are initialised.
    unsafe fn set_filled(&mut self, n: usize);
}

// SAFETY: a Vec's heap block does not move while the Vec is not mutated,
// and `len` bytes of it are initialised.
unsafe impl IoBuf for Vec<u8> {
    fn as_ptr(&self) -> *const u8 {
        Vec::as_ptr(self)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

// SAFETY: as for `Vec<u8>`: the boxed slice's block does not move.
unsafe impl IoBuf for Box<[u8]> {
    fn as_ptr(&self) -> *const u8 {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

// SAFETY: a read fills the Vec's spare capacity from its start: the whole
// allocation is writable, and after `n` bytes were written, `set_len(n)`
// exposes only initialised bytes.
unsafe impl IoBufMut for Vec<u8> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        Vec::as_mut_ptr(self)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    unsafe fn set_filled(&mut self, n: usize) {
        // SAFETY: the caller says the first `n <= capacity` bytes are
        // initialised.
        unsafe { self.set_len(n) }
    }
}

// SAFETY: every byte of a boxed slice is initialised and writable; a read
// overwrites the first `n`, and the length stays what it was.
unsafe impl IoBufMut for Box<[u8]> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        (**self).as_mut_ptr()
    }
    fn capacity(&self) -> usize {
        (**self).len()
    }
    unsafe fn set_filled(&mut self, _n: usize) {}
}
