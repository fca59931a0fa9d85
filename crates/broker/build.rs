//! Build script of the broker: lists the modules of Runnel's crates (the loggers that the
//! broker-logger configs describe and change, see `src/logging.rs`) into `modules.rs` in
//! `OUT_DIR`, as tracing targets written with dots (`runnel_broker.replica.fetcher`).

use std::path::Path;

/// Adds the module of every `.rs` file under `dir` (module path `prefix`) to `out`.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            let module = format!("{prefix}.{name}");
            if path.join("mod.rs").exists() {
                out.push(module.clone());
            }
            walk(&path, &module, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if !matches!(stem, "mod" | "lib" | "main") {
                out.push(format!("{prefix}.{stem}"));
            }
        }
    }
}

fn main() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("cargo:rerun-if-changed={}", crates.display());
    let mut modules = Vec::new();
    for (dir, root) in [
        ("broker", "runnel_broker"),
        ("storage", "runnel_storage"),
        ("metadata", "runnel_metadata"),
        ("config", "runnel_config"),
        ("client", "runnel_client"),
        ("protocol", "runnel_protocol"),
        ("cli", "runnel"),
    ] {
        modules.push(root.to_string());
        walk(&crates.join(dir).join("src"), root, &mut modules);
    }
    modules.sort();
    modules.dedup();
    let body: String = modules.iter().map(|m| format!("    {m:?},\n")).collect();
    let text = format!(
        "/// Every module of Runnel's crates, as a logger name.\npub const MODULES: &[&str] = &[\n{body}];\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("modules.rs");
    std::fs::write(out, text).expect("writing modules.rs");
}
