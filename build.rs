//! Compiles `proto/escrow/v1/*.proto` into Rust with protox, a protobuf
//! compiler written in Rust, so no `protoc` is needed: prost generates the
//! messages and tonic-prost-build the gRPC clients and servers of the
//! services, all into `escrow.v1.rs` in `OUT_DIR` (included by
//! `src/proto.rs`). The encoded descriptor set, `escrow_v1_descriptor.bin`,
//! feeds gRPC server reflection.

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
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("escrow_v1_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), prost_build::Config::new())?;
    Ok(())
}
