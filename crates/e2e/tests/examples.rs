//! The library's examples (`crates/shm_common/examples`), as `cargo run --example`
//! runs them: the minimal writer persists a stream, the minimal reader gets it whole
//! and removes both objects. `cargo test` builds the examples into
//! `target/debug/examples`.
mod support;
use shm_cli::keys::Range;
use std::process::{Command, Stdio};
use support::*;

fn example(name: &str, k: &TestKey) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` (make test) builds the examples",
        path.display()
    );
    let mut c = Command::new(path);
    c.arg(k.arg());
    c
}

#[test]
fn minimal_writer_and_reader_move_a_stream() {
    let k = TestKey::in_range(Range::EXAMPLES);
    let data = pseudo_random(300_000, 0xe7a);
    let input = TempFile::new(&data);
    let w = Proc::spawn(example("minimal_writer", &k), Stdio::from(input.open())).wait(TIMEOUT);
    assert_ok(&w, "minimal_writer");
    assert_eq!(k.in_ipcs(), (true, true), "the stream waits in the kernel");
    let r = run(example("minimal_reader", &k), TIMEOUT);
    assert_ok(&r, "minimal_reader");
    assert_all(&r.stdout, &data, "minimal pair");
    k.assert_clean();
}
