//! Source files named to people: a panic's location, which the page shows when the model stops
//! (`web::panic_hook`). Native builds name none, but the rule is tested here.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// A panic's source file as the page may show it: a path inside this crate as it is
/// (`src/web/loader.rs`); an absolute one (a dependency's, under the building machine's cargo
/// folder) from its crate's folder on (`candle-core-0.11.1/src/tensor.rs`), so that no path of
/// the machine that built the package reaches the page.
pub(crate) fn shown(file: &str) -> String {
    let absolute = file.starts_with('/') || file.starts_with('\\') || file.get(1..3) == Some(":\\") || file.get(1..3) == Some(":/");
    if !absolute {
        return file.to_string();
    }
    let parts: Vec<&str> = file.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    match parts.iter().rposition(|p| *p == "src") {
        Some(i) if i > 0 => parts[i - 1..].join("/"),
        _ => parts.last().copied().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown as shown_file;

    #[test]
    fn no_path_of_the_building_machine_is_shown() {
        assert_eq!(shown_file("src/web/loader.rs"), "src/web/loader.rs");
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/candle-core-0.11.1/src/tensor.rs";
        assert_eq!(shown_file(registry), "candle-core-0.11.1/src/tensor.rs");
        assert_eq!(shown_file("/home/someone/work/clipmatch/vendor/candle-core/src/cpu/mod.rs"), "candle-core/src/cpu/mod.rs");
        assert_eq!(shown_file("C:\\Users\\someone\\.cargo\\registry\\src\\x\\image-0.25.10\\src\\lib.rs"), "image-0.25.10/src/lib.rs");
        assert_eq!(shown_file("/rustc/59807616e/library/core/src/slice/index.rs"), "core/src/slice/index.rs");
        assert_eq!(shown_file("/weird.rs"), "weird.rs");
    }
}
