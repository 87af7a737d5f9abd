//! An `FdMonitor` over io_uring (work in progress).
