//! Compiles `proto/rtbcore/v1/bidding.proto` with protox (pure Rust, so no system `protoc` is
//! needed), then generates the prost messages and, with pbjson, their canonical JSON mapping.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("rtbcore/v1/bidding.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out.join("rtbcore_v1.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;
    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .build(&[".rtbcore.v1"])?;
    Ok(())
}
