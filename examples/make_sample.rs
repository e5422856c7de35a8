//! Regenerates `examples/sample.beef.hex` and `examples/sample.headers.json`
//! (the README's quick-start input) with escrowd's own core:
//! `cargo run --example make_sample`.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let sample = escrowd::sample::build().map_err(anyhow::Error::msg)?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::write(dir.join("sample.beef.hex"), sample.beef_file())?;
    std::fs::write(dir.join("sample.headers.json"), sample.headers_file())?;
    println!(
        "subject {}",
        sample
            .beef
            .subject()
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    Ok(())
}
