//! Hand-built IDX files (the format is described in `dendrite_nn::data`), for the nn crate's
//! data tests and the workspace's reliability tests.

use std::io::Write;

/// An IDX images file: magic `0x0803`, three big-endian dimensions, then the pixels as given
/// (which may disagree with the dimensions, to test the reader).
pub fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// An IDX labels file: magic `0x0801`, the count, then the labels as given.
pub fn idx_labels(count: u32, labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&count.to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}
