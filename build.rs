//! Compiles `proto/escrow/v1/*.proto` into Rust (prost) with protox, a
//! protobuf compiler written in Rust, so no `protoc` is needed. The output
//! (`escrow.v1.rs` in `OUT_DIR`) is included by `src/proto.rs`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto/escrow/v1");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            files.push(path.strip_prefix("proto")?.to_path_buf());
        }
    }
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{}", f.display());
    }
    let descriptors = protox::compile(&files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
