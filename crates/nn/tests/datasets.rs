//! Tests of `dendrite_nn::datasets` against a real HTTP server on 127.0.0.1
//! (`dendrite_test_support::http`) serving small generated fixtures, with every cache in a
//! scratch directory and every setting explicit: no test reads or writes the environment,
//! the user's cache or the network.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dendrite_nn::datasets::{
    cifar10_with, fetch, load_cifar10, mnist_or_synthetic, mnist_with, DatasetError, FetchConfig,
    FetchFailure, Found, Origin, RemoteFile, Source,
};
use sha2::{Digest, Sha256};

use dendrite_test_support::http::{Reply, Server};
use dendrite_test_support::idx::{gzip, idx_images, idx_labels};

/// A fresh, empty directory under Cargo's per-target scratch space.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("datasets-tests-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Files in `dir`, sorted (empty if it does not exist): what "the cache is untouched" means.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn remote(name: &str, bytes: &[u8]) -> RemoteFile {
    RemoteFile::new(name, bytes.len() as u64, sha256_hex(bytes))
}

/// A short timeout: the stalled-server tests wait this long.
fn config(cache: &Path) -> FetchConfig {
    FetchConfig::new(cache).timeout(Duration::from_secs(1))
}

/// Tiny MNIST: three 4x4 training images, two test images, gzip-compressed, under the four
/// MNIST file names.
fn tiny_mnist() -> Vec<(String, Vec<u8>)> {
    let train: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect();
    let files = [
        ("train-images-idx3-ubyte.gz", idx_images(3, 4, 4, &train)),
        ("train-labels-idx1-ubyte.gz", idx_labels(3, &[1, 2, 3])),
        ("t10k-images-idx3-ubyte.gz", idx_images(2, 4, 4, &[7; 32])),
        ("t10k-labels-idx1-ubyte.gz", idx_labels(2, &[9, 0])),
    ];
    files
        .into_iter()
        .map(|(name, raw)| (name.to_owned(), gzip(&raw)))
        .collect()
}

/// The source describing `files` on `mirrors`.
fn source_of(files: &[(String, Vec<u8>)], mirrors: Vec<String>) -> Source {
    Source::new(
        "mnist",
        mirrors,
        files.iter().map(|(name, bytes)| remote(name, bytes)),
    )
}

/// `files` served whole under `/mnist/`, except `name`, answered with `reply`.
fn serve(files: &[(String, Vec<u8>)], name: &str, reply: Option<Reply>) -> Server {
    let routes = files.iter().map(|(file, bytes)| {
        let r = match (&reply, file == name) {
            (Some(r), true) => r.clone(),
            _ => Reply::Whole(bytes.clone()),
        };
        (format!("/mnist/{file}"), r)
    });
    Server::start(routes.collect())
}

/// The failures recorded for the mirrors in an `Unavailable` error.
fn mirror_failures(err: DatasetError) -> Vec<FetchFailure> {
    match err {
        DatasetError::Unavailable { attempts, .. } => attempts
            .into_iter()
            .filter(|a| a.location.starts_with("http://"))
            .map(|a| a.failure)
            .collect(),
        other => panic!("expected Unavailable, got {other}"),
    }
}

#[test]
fn downloads_verifies_caches_then_serves_from_the_cache_offline() {
    let files = tiny_mnist();
    let server = serve(&files, "", None);
    let cache = scratch_dir("roundtrip");
    let source = source_of(&files, vec![server.url("mnist")]);

    let (data, origin) = mnist_with(&source, &config(&cache)).unwrap();
    assert!(matches!(origin, Origin::Downloaded(_)), "{origin}");
    assert_eq!((data.train.len(), data.test.len()), (3, 2));
    assert_eq!(data.train.labels(), &[1, 2, 3]);
    assert_eq!(server.requests(), 4);
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(cache.join("mnist").join(name)).unwrap(),
            bytes
        );
    }
    // No temporary file is left beside them.
    assert_eq!(listing(&cache.join("mnist")).len(), 4);

    // The server is gone: the second call must not need it.
    server.stop();
    let (again, origin) = mnist_with(&source, &config(&cache)).unwrap();
    assert!(matches!(origin, Origin::Cached(_)), "{origin}");
    assert_eq!(again.train.labels(), data.train.labels());
}

#[test]
fn a_corrupted_file_is_refused_and_the_cache_is_untouched() {
    let files = tiny_mnist();
    let (name, good) = &files[2];
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55; // same length, different bytes
    let server = serve(&files, name, Some(Reply::Whole(bad)));
    let cache = scratch_dir("corrupt");
    let source = source_of(&files, vec![server.url("mnist")]);

    let err = mnist_with(&source, &config(&cache)).unwrap_err();
    let line = err.to_string();
    assert!(
        line.contains("SHA-256 mismatch") && line.contains(name),
        "{line}"
    );
    let failures = mirror_failures(err);
    assert!(
        matches!(&failures[..], [FetchFailure::ChecksumMismatch { expected, .. }] if *expected == sha256_hex(good)),
        "{failures:?}"
    );
    // The two files before it are cached; the corrupt one, and any temporary file, are not.
    let cached = listing(&cache.join("mnist"));
    let mut expected = vec![files[0].0.clone(), files[1].0.clone()];
    expected.sort();
    assert_eq!(cached, expected);
}

#[test]
fn a_wrong_file_in_the_cache_is_replaced_by_a_verified_download() {
    let files = tiny_mnist();
    let server = serve(&files, "", None);
    let cache = scratch_dir("stale");
    std::fs::create_dir_all(cache.join("mnist")).unwrap();
    let stale = cache.join("mnist").join(&files[0].0);
    std::fs::write(&stale, b"not the labels").unwrap();
    let source = source_of(&files, vec![server.url("mnist")]);

    // Offline, the stale file is reported and not used.
    let err = mnist_with(&source, &config(&cache).download(false)).unwrap_err();
    assert!(err.to_string().contains("present but wrong"), "{err}");
    assert_eq!(std::fs::read(&stale).unwrap(), b"not the labels");

    // Online, it is replaced.
    let (data, _) = mnist_with(&source, &config(&cache)).unwrap();
    assert_eq!(data.train.labels(), &[1, 2, 3]);
    assert_eq!(&std::fs::read(&stale).unwrap(), &files[0].1);
}

#[test]
fn a_truncated_response_is_refused() {
    let files = tiny_mnist();
    let (name, bytes) = &files[0];
    let half = bytes.len() / 2;
    let server = serve(&files, name, Some(Reply::CutShort(bytes.clone(), half)));
    let cache = scratch_dir("truncated");
    let source = source_of(&files, vec![server.url("mnist")]);

    let failures = mirror_failures(fetch(&source, &config(&cache)).unwrap_err());
    assert!(
        matches!(&failures[..], [FetchFailure::Truncated { received, expected }]
            if *received <= half as u64 && *expected == bytes.len() as u64),
        "{failures:?}"
    );
    assert!(listing(&cache.join("mnist")).is_empty());
}

#[test]
fn a_wrong_content_length_is_refused_before_the_body() {
    let files = tiny_mnist();
    let (name, bytes) = &files[3];
    let reply = Reply::Announce(bytes.clone(), 1 << 40);
    let server = serve(&files, name, Some(reply));
    let cache = scratch_dir("announce");
    let source = source_of(&files, vec![server.url("mnist")]);

    let failures = mirror_failures(fetch(&source, &config(&cache)).unwrap_err());
    assert!(
        matches!(&failures[..], [FetchFailure::WrongLength { announced, .. }] if *announced == 1 << 40),
        "{failures:?}"
    );
}

#[test]
fn a_stalled_server_times_out_and_the_next_mirror_is_tried() {
    let files = tiny_mnist();
    let (name, bytes) = &files[0];
    // The first mirror sends half the headers' promise and stalls; the second never answers;
    // the third serves the file.
    let stall_body = serve(&files, name, Some(Reply::StallAfter(bytes.clone(), 10)));
    let stall = serve(&files, name, Some(Reply::Stall));
    let good = serve(&files, "", None);
    let cache = scratch_dir("stall");
    let mirrors = vec![
        stall_body.url("mnist"),
        stall.url("mnist"),
        good.url("mnist"),
    ];
    let source = source_of(&files, mirrors);

    let found = fetch(&source, &config(&cache)).unwrap();
    assert!(matches!(found, Found::Downloaded(_)));

    // Without the good mirror, both time-outs are reported.
    let cache = scratch_dir("stall-only");
    let source = source_of(&files, vec![stall_body.url("mnist"), stall.url("mnist")]);
    let failures = mirror_failures(fetch(&source, &config(&cache)).unwrap_err());
    assert!(
        matches!(
            &failures[..],
            [FetchFailure::Timeout { .. }, FetchFailure::Timeout { .. }]
        ),
        "{failures:?}"
    );
    assert!(listing(&cache.join("mnist")).is_empty());
}

#[test]
fn offline_it_says_where_it_looked_and_falls_back_to_synthetic_digits() {
    let files = tiny_mnist();
    let cache = scratch_dir("offline");
    // A port nothing listens on: any request would fail, and none may be made.
    let source = source_of(&files, vec!["http://127.0.0.1:9/mnist/".to_owned()]);
    let offline = config(&cache).download(false);

    let err = mnist_with(&source, &offline).unwrap_err();
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains(&cache.join("mnist").display().to_string()),
        "{line}"
    );
    assert!(line.contains("download: off"), "{line}");

    let (data, origin) = mnist_or_synthetic(&Source::mnist(), &offline, 0).unwrap();
    let said = origin.to_string();
    assert!(matches!(origin, Origin::Synthetic(_)));
    assert!(
        said.contains("DENDRITE_MNIST_DIR") && said.contains("SYNTHETIC"),
        "{said}"
    );
    assert_eq!(data.train.features(), 784);

    // A refused connection counts as unavailable too.
    let (_, origin) = mnist_or_synthetic(&source, &config(&cache), 0).unwrap();
    assert!(matches!(origin, Origin::Synthetic(_)), "{origin}");
}

#[test]
fn a_local_directory_is_used_alone() {
    let files = tiny_mnist();
    let dir = scratch_dir("local");
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let server = serve(&files, "", None);
    let source = source_of(&files, vec![server.url("mnist")]);
    let cache = scratch_dir("local-cache");
    let with_dir = config(&cache).local_dir(Some(&dir));
    let (data, origin) = mnist_with(&source, &with_dir).unwrap();
    assert!(matches!(origin, Origin::LocalDir(_)));
    assert_eq!(data.test.len(), 2);
    assert_eq!(server.requests(), 0);

    // A local directory in error is reported, not replaced by a download.
    std::fs::remove_file(dir.join(&files[3].0)).unwrap();
    let err = mnist_or_synthetic(&source, &with_dir, 0).unwrap_err();
    assert!(matches!(err, DatasetError::Data(_)), "{err}");
    assert_eq!(server.requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10.

const RECORD: usize = 3073;

/// `n` records whose label is `(first + i) % 10` and whose red, green and blue planes are
/// filled with `label`, `label + 100` and `label + 200`... except pixel 0 of each plane,
/// which carries the record's position so that ordering is checked.
fn batch(n: usize, first: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..n {
        let label = ((first + i) % 10) as u8;
        bytes.push(label);
        for c in 0..3u8 {
            let mut plane = vec![label + 100 * c; 1024];
            plane[0] = (first + i) as u8;
            bytes.extend_from_slice(&plane);
        }
    }
    bytes
}

fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("cifar-10-batches-bin/{name}"),
                &bytes[..],
            )
            .unwrap();
    }
    let mut gz = builder.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// Five training batches of 2 records and a test batch of 3, plus a member to be skipped.
fn tiny_cifar() -> Vec<u8> {
    let mut members: Vec<(String, Vec<u8>)> =
        vec![("batches.meta.txt".into(), b"airplane\n".to_vec())];
    for b in 0..5 {
        members.push((format!("data_batch_{}.bin", b + 1), batch(2, 2 * b)));
    }
    members.push(("test_batch.bin".into(), batch(3, 50)));
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    tar_gz(&refs)
}

#[test]
fn cifar10_is_fetched_and_loaded_as_nhwc() {
    let archive = tiny_cifar();
    let name = "cifar-10-binary.tar.gz";
    let server = Server::start(vec![(
        format!("/cifar/{name}"),
        Reply::Whole(archive.clone()),
    )]);
    let cache = scratch_dir("cifar");
    let source = Source::new("cifar-10", [server.url("cifar")], [remote(name, &archive)]);

    let (cifar, origin) = cifar10_with(&source, &config(&cache)).unwrap();
    assert!(matches!(origin, Origin::Downloaded(_)));
    assert_eq!(cifar.train.images.shape(), &[10, 32, 32, 3]);
    assert_eq!(cifar.test.images.shape(), &[3, 32, 32, 3]);
    assert_eq!(cifar.train.labels.to_vec(), (0..10).collect::<Vec<u8>>());
    // Record 7 of the training set: label 7, pixel (0, 0) carries its position, every other
    // pixel is (7, 107, 207) in (red, green, blue).
    let img = cifar.train.images.index_axis(ndarray::Axis(0), 7);
    assert_eq!(img[[0, 0, 0]], 7);
    assert_eq!(
        (img[[5, 9, 0]], img[[5, 9, 1]], img[[5, 9, 2]]),
        (7, 107, 207)
    );
    assert_eq!(cifar.test.labels.to_vec(), vec![0, 1, 2]);

    server.stop();
    let (again, origin) = cifar10_with(&source, &config(&cache)).unwrap();
    assert!(matches!(origin, Origin::Cached(_)));
    assert_eq!(again, cifar);
}

#[test]
fn cifar10_archives_that_do_not_fit_are_refused() {
    let dir = scratch_dir("cifar-bad");
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let full = |test: Vec<u8>| {
        let mut m: Vec<(&str, Vec<u8>)> = (1..=5).map(|_| ("", batch(1, 0))).collect();
        let names = [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ];
        for (slot, n) in m.iter_mut().zip(names) {
            slot.0 = n;
        }
        m.push(("test_batch.bin", test));
        m
    };

    let missing = write("missing.tar.gz", tar_gz(&full(batch(1, 0))[..5]));
    let err = load_cifar10(&missing).unwrap_err();
    assert!(
        matches!(&err, DatasetError::MissingMember { member, .. } if member == "test_batch.bin"),
        "{err}"
    );

    let mut short = batch(2, 0);
    short.truncate(RECORD + 5);
    let ragged = write("ragged.tar.gz", tar_gz(&full(short)));
    let err = load_cifar10(&ragged).unwrap_err();
    assert!(
        matches!(&err, DatasetError::BadMember { len, .. } if *len == (RECORD + 5) as u64),
        "{err}"
    );

    let mut label = batch(1, 0);
    label[0] = 10;
    let labels = write("label.tar.gz", tar_gz(&full(label)));
    let err = load_cifar10(&labels).unwrap_err();
    assert!(
        matches!(&err, DatasetError::BadLabel { value: 10, .. }),
        "{err}"
    );

    let mut cut = tar_gz(&full(batch(1, 0)));
    cut.truncate(cut.len() / 2);
    let cut = write("cut.tar.gz", cut);
    let err = load_cifar10(&cut).unwrap_err();
    assert!(matches!(&err, DatasetError::Archive { .. }), "{err}");

    // Extracted batch files in a directory load the same.
    let extracted = scratch_dir("cifar-extracted");
    for (name, bytes) in full(batch(4, 3)) {
        std::fs::write(extracted.join(name), bytes).unwrap();
    }
    let cifar = load_cifar10(&extracted).unwrap();
    assert_eq!(cifar.test.images.shape(), &[4, 32, 32, 3]);
    assert_eq!(cifar.train.labels.len(), 5);
}
