//! An `FdMonitor` over epoll (work in progress).
