//! Files are read within what they can hold: devices and special files are refused, gzip
//! bombs are refused before (or stopped during) inflation with bounded memory, hostile header
//! sizes give a typed error or a correct result, and functions that allocate by argument are
//! bounded by the per-tensor limit.

use std::io::Write;
use std::path::{Path, PathBuf};

use dendrite_nn::data::{
    load_mnist, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels,
    shuffled_indices, synthetic_digits, DataError, EpochOrder, MAX_GZIP_RATIO, TEST_IMAGES,
    TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
};
use proptest::prelude::*;

use super::{scratch_dir, write};
use dendrite_test_support::alloc::largest_allocation;
use dendrite_test_support::idx::{gzip, idx_images, idx_labels};

// ---------------------------------------------------------------------------------------------
// Devices and special files.

#[cfg(unix)]
#[test]
fn dev_zero_is_refused_by_every_idx_reader() {
    let zero = Path::new("/dev/zero");
    for err in [
        read_idx_images(zero).map(|_| ()).unwrap_err(),
        read_idx_labels(zero).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, DataError::NotAFile { path, kind: "a character device" } if path == zero),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "/dev/zero: a character device, not a regular file: data are read only from regular files, whose length bounds what is read"
        );
    }
    // The loader, given a directory whose training images are a link to /dev/zero.
    let dir = scratch_dir("dev-zero-link");
    std::os::unix::fs::symlink(zero, dir.join(format!("{TRAIN_IMAGES}.gz"))).unwrap();
    write(&dir, TRAIN_LABELS, &idx_labels(1, &[1]));
    write(&dir, TEST_IMAGES, &idx_images(1, 1, 1, &[1]));
    write(&dir, TEST_LABELS, &idx_labels(1, &[1]));
    let err = load_mnist(&dir).unwrap_err();
    assert!(matches!(err, DataError::NotAFile { .. }), "{err:?}");
}

#[test]
fn a_directory_is_not_read_as_a_file() {
    let dir = scratch_dir("dir-as-file");
    let err = read_idx_images(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NotAFile {
                kind: "a directory",
                ..
            }
        ),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = scratch_dir("fifo");
    let fifo = dir.join("images");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        println!("skipping: mkfifo is not available");
        return;
    }
    // Opening a FIFO for reading would wait for a writer: the reader must not open it.
    let err = read_idx_images(&fifo).unwrap_err();
    assert!(
        matches!(err, DataError::NotAFile { kind: "a FIFO", .. }),
        "{err:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_special_file_longer_than_its_length_is_refused() {
    // /proc files are regular files of length 0 that hold text.
    let path = Path::new("/proc/self/status");
    let err = read_idx_labels(path).unwrap_err();
    assert!(
        matches!(&err, DataError::FileGrew { len: 0, path: p } if p == path),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("/proc/self/status: the file holds more than the 0 bytes"),
        "{err}"
    );
}

#[test]
fn a_raw_file_longer_than_its_header_claims_is_refused_unread() {
    let dir = scratch_dir("sparse");
    let path = write(&dir, "labels", &idx_labels(1, &[1]));
    // 1 GiB, sparse: reading it whole would take 1 GiB of memory.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (result, largest) = largest_allocation(|| read_idx_labels(&path));
    assert!(
        matches!(result, Err(DataError::TrailingBytes { expected: 9, extra, .. }) if extra == (1 << 30) - 9),
        "{result:?}"
    );
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

// ---------------------------------------------------------------------------------------------
// Gzip bombs.

/// An IDX header claiming `count x rows x cols` images, followed by `zeros` zero bytes, all
/// gzip-compressed at the best ratio (written in chunks: the raw stream is never held).
fn bomb(count: u32, rows: u32, cols: u32, zeros: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&idx_images(count, rows, cols, &[])).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

/// 128 MiB of zeros behind the header: about 130 KB of gzip.
const BOMB_ZEROS: usize = 128 << 20;

#[test]
fn a_header_no_compression_ratio_can_honour_is_refused_up_front() {
    // ~1.8e19 bytes claimed, as in the issue.
    let gz = bomb(u32::MAX, 1 << 16, 1 << 16, BOMB_ZEROS);
    let (result, largest) = largest_allocation(|| parse_idx_images(&gz));
    let err = result.unwrap_err();
    let compressed = gz.len() as u64;
    assert!(
        matches!(err, DataError::ImplausibleClaim { claimed, compressed: c, ratio: MAX_GZIP_RATIO, .. }
            if claimed == 18_446_744_069_414_584_336 && c == compressed),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "<memory>: the IDX header claims 18446744069414584336 bytes, but {compressed} bytes of gzip cannot inflate to more than {} (at most 1032:1)",
            compressed * 1032
        )
    );
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

#[test]
fn inflation_stops_at_the_claimed_size() {
    // 1 MiB claimed, 128 MiB in the stream.
    let gz = bomb(1, 1024, 1024, BOMB_ZEROS);
    let (result, largest) = largest_allocation(|| parse_idx_images(&gz));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::GzipTrailing {
                expected: 1_048_592,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(largest < 4 << 20, "largest allocation {largest} bytes");
}

/// The peak resident memory of this process, in bytes (`VmHWM`).
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// The variable that makes [`bomb_child`] read a file instead of returning at once.
const CHILD_ENV: &str = "DENDRITE_BOUNDS_CHILD_FILE";

/// Not a test of its own: run by [`bombs_are_refused_within_bounded_memory`] in a child
/// process, it reads the file named by [`CHILD_ENV`] and prints the error and how much the peak
/// resident memory grew while reading.
#[cfg(target_os = "linux")]
#[test]
fn bomb_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let before = peak_rss();
    let result = read_idx_images(Path::new(&path));
    let grew = peak_rss().saturating_sub(before);
    println!("CHILD-RESULT {:?}", result.map(|i| i.count));
    println!("CHILD-PEAK-GROWTH {grew}");
}

/// Runs [`bomb_child`] on `path` in a fresh process; returns its result line and peak growth.
#[cfg(target_os = "linux")]
fn read_in_child(path: &Path) -> (String, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bounds::bomb_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {stdout}");
    // The harness prints the test's name on the same line as the first output.
    let field = |key: &str| {
        let rest = stdout.split(key).nth(1);
        let line = rest.and_then(|r| r.lines().next());
        line.map(|l| l.trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
    };
    let grew = field("CHILD-PEAK-GROWTH").parse().unwrap();
    (field("CHILD-RESULT"), grew)
}

/// The bombs, read from disk in a child process: the typed error, and a peak resident memory
/// that grew by less than 64 MiB (the old reader inflated the first to hundreds of MiB).
#[cfg(target_os = "linux")]
#[test]
fn bombs_are_refused_within_bounded_memory() {
    let dir = scratch_dir("bombs");
    let cases = [
        (
            "claims-1.8e19.gz",
            bomb(u32::MAX, 1 << 16, 1 << 16, BOMB_ZEROS),
            "ImplausibleClaim",
        ),
        (
            "claims-1MiB.gz",
            bomb(1, 1024, 1024, BOMB_ZEROS),
            "GzipTrailing",
        ),
    ];
    for (name, bytes, variant) in cases {
        let path: PathBuf = write(&dir, name, &bytes);
        let (result, grew) = read_in_child(&path);
        assert!(
            result.starts_with(&format!("Err({variant}")),
            "{name}: {result}"
        );
        assert!(grew < 64 << 20, "{name}: peak memory grew by {grew} bytes");
    }
    let (result, grew) = read_in_child(Path::new("/dev/zero"));
    assert!(result.starts_with("Err(NotAFile"), "{result}");
    assert!(
        grew < 64 << 20,
        "/dev/zero: peak memory grew by {grew} bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// MNIST directories.

#[test]
fn train_and_test_images_of_different_sizes_are_refused() {
    let dir = scratch_dir("size-mismatch");
    write(&dir, TRAIN_IMAGES, &idx_images(1, 2, 3, &[0; 6]));
    write(&dir, TRAIN_LABELS, &idx_labels(1, &[1]));
    write(&dir, TEST_IMAGES, &idx_images(1, 3, 2, &[0; 6]));
    write(&dir, TEST_LABELS, &idx_labels(1, &[1]));
    let err = load_mnist(&dir).unwrap_err();
    let (train, test) = (dir.join(TRAIN_IMAGES), dir.join(TEST_IMAGES));
    assert!(
        matches!(&err, DataError::ImageSizeMismatch {
            train_path, train_rows: 2, train_cols: 3, test_path, test_rows: 3, test_cols: 2,
        } if train_path == &train && test_path == &test),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds images of 2x3 but {} holds images of 3x2: training and test images must have one size",
            train.display(),
            test.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes by argument.

#[test]
fn functions_that_allocate_by_argument_are_bounded() {
    for n in [usize::MAX, usize::MAX / 784 + 1, 1 << 40] {
        let (result, largest) = largest_allocation(|| synthetic_digits(n, 0).map(|d| d.len()));
        assert!(
            matches!(result, Err(DataError::TooLarge { .. })),
            "{n}: {result:?}"
        );
        assert!(largest < 1 << 20, "{n}: largest allocation {largest}");
        assert!(matches!(
            EpochOrder::new(n, 0),
            Err(DataError::TooLarge { .. })
        ));
        assert!(matches!(
            shuffled_indices(n, 0, 0),
            Err(DataError::TooLarge { .. })
        ));
    }
    let err = synthetic_digits(usize::MAX, 0).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "<memory>: the synthetic images would take more than {} bytes, more than the per-tensor limit of",
            u64::MAX
        )),
        "{err}"
    );
    assert_eq!(synthetic_digits(0, 0).unwrap().len(), 0);
}

// ---------------------------------------------------------------------------------------------
// Hostile header sizes.

/// A dimension a hostile header might hold: zero, small, a power of two, or near `u32::MAX`.
fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        1u32..5,
        (0u32..32).prop_map(|k| 1 << k),
        (0u32..3).prop_map(|k| u32::MAX - k),
    ]
}

/// What parsing `(count, rows, cols)` with `present` payload bytes must give.
fn check_images(count: u32, rows: u32, cols: u32, present: usize, gz: bool) {
    let raw = idx_images(count, rows, cols, &vec![7; present]);
    let input = if gz { gzip(&raw) } else { raw };
    let (result, largest) = largest_allocation(|| parse_idx_images(&input));
    let claim = u128::from(count) * u128::from(rows) * u128::from(cols);
    match result {
        Ok(images) => {
            assert_eq!(
                (images.count, images.rows, images.cols),
                (count as usize, rows as usize, cols as usize)
            );
            assert_eq!(images.pixels.len() as u128, claim);
            assert_eq!(claim, present as u128);
        }
        Err(err) => {
            let expected = match err {
                DataError::BadDimensions { .. } => rows == 0 || cols == 0,
                DataError::TooLarge { bytes: None, .. } => claim > u128::from(u64::MAX),
                DataError::Truncated { .. } => claim > present as u128,
                DataError::TrailingBytes { .. } | DataError::GzipTrailing { .. } => {
                    claim < present as u128
                }
                DataError::ImplausibleClaim { .. } => gz && claim > present as u128,
                DataError::TooLarge { .. } => claim > u128::from(u32::MAX),
                _ => false,
            };
            assert!(
                expected,
                "({count}, {rows}, {cols}) with {present} bytes: {err:?}"
            );
        }
    }
    // The file itself, or what deflate can expand it to plus the decoder's state.
    let justified = if gz {
        1032 * input.len() + (68 << 10)
    } else {
        input.len() + (4 << 10)
    };
    assert!(largest <= justified, "largest allocation {largest}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any header sizes, raw or gzip, with a payload that may or may not fit them: a correct
    /// result or the typed error that names the actual fault, never a panic or a large
    /// allocation.
    #[test]
    fn hostile_header_sizes_give_a_typed_error_or_a_correct_result(
        count in dimension(),
        rows in dimension(),
        cols in dimension(),
        present in 0usize..64,
        gz in any::<bool>(),
    ) {
        check_images(count, rows, cols, present, gz);
    }

    /// The same for label files, whose one size is the payload length.
    #[test]
    fn hostile_label_counts_give_a_typed_error_or_a_correct_result(
        count in dimension(),
        present in 0usize..64,
        gz in any::<bool>(),
    ) {
        let raw = idx_labels(count, &vec![3; present]);
        let input = if gz { gzip(&raw) } else { raw };
        match parse_idx_labels(&input) {
            Ok(labels) => prop_assert_eq!(labels.len() as u64, u64::from(count)),
            Err(err) => prop_assert!(
                matches!(
                    err,
                    DataError::Truncated { .. }
                        | DataError::TrailingBytes { .. }
                        | DataError::GzipTrailing { .. }
                        | DataError::ImplausibleClaim { .. }
                ) && u64::from(count) != present as u64,
                "{count} with {present} bytes: {err:?}"
            ),
        }
    }
}
