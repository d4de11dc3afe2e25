//! Panics in the browser. A panic (a bug) aborts, which traps the wasm instance: JavaScript sees
//! only `RuntimeError: unreachable`. The hook installed here logs the panic to the console
//! (`console_error_panic_hook`) and keeps its message, one line, which the worker takes after the
//! trap (`takePanicMessage`) so that the page can say why the model stopped.

use std::panic::{self, PanicHookInfo};
use std::sync::{Mutex, Once};

use wasm_bindgen::prelude::*;

/// The longest message kept (a panic may format a large value).
const MAX_MESSAGE_CHARS: usize = 300;

/// The last panic's message, until it is taken.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Installs the hook, once (the entry points call this before any work); the hook that was
/// there before (std's, or a test runner's) still runs after it.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(one_line(info));
            }
            console_error_panic_hook::hook(info);
            previous(info);
        }));
    });
}

/// The message of the last panic, once (the worker asks after a trap): `None` if there was none.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    LAST_PANIC.lock().ok()?.take()
}

/// The panic's message on one line, at most `MAX_MESSAGE_CHARS`, and where it happened.
fn one_line(info: &PanicHookInfo) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    let mut text: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).chain(['…']).collect();
    }
    match info.location() {
        Some(at) => format!("{text}, at {}:{}", crate::source_file::shown(at.file()), at.line()),
        None => text,
    }
}

/// Test-only (`--features test-hooks`: the end-to-end tests' own package, never `pkg/`): panics
/// with `message`, as a bug would.
#[cfg(feature = "test-hooks")]
#[wasm_bindgen(js_name = panicForTest)]
pub fn panic_for_test(message: &str) {
    panic!("{message}");
}
