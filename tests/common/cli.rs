//! Reading what a `clipmatch` process did, for the tests that run the tool (native only).

use std::path::Path;
use std::process::Output;

/// Bytes of a process's output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A success: exit 0; its stdout.
pub fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// A refusal: exit 1 and one line on stderr containing `needle`.
pub fn refused(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "should be refused:\n{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line:\n{err}");
    assert!(err.contains(needle), "{needle:?} is not in:\n{err}");
}

/// A path as an argument (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
