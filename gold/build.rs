//! Embeds every file of `models/` (the SQL models and their TOML descriptions) at compile
//! time, so that a new model needs no Rust: `models.rs` reads the generated list.

use std::fmt::Write;

fn main() {
    // The manifest directory of this build (not of the build script's own compilation: a
    // build script compiled for another checkout must still embed this checkout's models).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&manifest).join("models");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("gold/models")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql") || n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut out = String::from("/// Every file of gold/models: (file name, contents).\npub const FILES: &[(&str, &str)] = &[\n");
    for n in &names {
        println!("cargo:rerun-if-changed={}", dir.join(n).display());
        writeln!(out, "    ({n:?}, include_str!({:?})),", dir.join(n).display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("model_files.rs");
    std::fs::write(dest, out).expect("write model_files.rs");
}
