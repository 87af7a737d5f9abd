//! The conformance suite on the simulated monitor, in both of its modes.

mod sim {
    aio_core::conformance_tests!(aio_core::testing::Harness::sim());
}

mod sim_observable {
    aio_core::conformance_tests!(aio_core::testing::Harness::sim_observable());
}
