//! Nothing here: this package only holds the integration tests in `tests/`, which
//! spawn the real `writer` and `reader` binaries (built by `make test` first).
