//! Tests of `dendrite_nn::data`: the IDX reader and its errors, MNIST loading, synthetic
//! digits, datasets and batching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use dendrite_nn::data::{
    batches, load_mnist, mnist_dir_from_env, parse_idx_images, parse_idx_labels, read_idx_images,
    read_idx_labels, shuffled_indices, synthetic_digits, synthetic_mnist, DataError, Dataset,
    EpochOrder, IdxPart, MNIST_DIR_ENV, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
};
use proptest::prelude::*;

#[path = "data/bounds.rs"]
mod bounds;
use dendrite_test_support::alloc::{largest_allocation, Tracking};
use dendrite_test_support::idx::{gzip, idx_images, idx_labels};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------------------------
// Hand-built IDX files.

/// Two 2x3 images and their labels.
fn tiny_images() -> Vec<u8> {
    idx_images(2, 2, 3, &[0, 1, 2, 3, 4, 5, 255, 254, 253, 252, 251, 250])
}

fn tiny_labels() -> Vec<u8> {
    idx_labels(2, &[7, 3])
}

/// A fresh, empty directory under Cargo's per-target scratch space.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("data-tests-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A directory with the four MNIST file names holding tiny data, train gzip, test raw.
fn tiny_mnist_dir(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    write(&dir, &format!("{TRAIN_IMAGES}.gz"), &gzip(&tiny_images()));
    write(&dir, &format!("{TRAIN_LABELS}.gz"), &gzip(&tiny_labels()));
    write(&dir, TEST_IMAGES, &idx_images(1, 2, 3, &[9; 6]));
    write(&dir, TEST_LABELS, &idx_labels(1, &[9]));
    dir
}

// ---------------------------------------------------------------------------------------------
// Valid files.

#[test]
fn parses_raw_images_and_labels() {
    let images = parse_idx_images(&tiny_images()).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
    assert_eq!(
        images.pixels,
        [0, 1, 2, 3, 4, 5, 255, 254, 253, 252, 251, 250]
    );
    assert_eq!(parse_idx_labels(&tiny_labels()).unwrap(), [7, 3]);
}

#[test]
fn parses_gzip_like_raw() {
    assert_eq!(
        parse_idx_images(&gzip(&tiny_images())).unwrap(),
        parse_idx_images(&tiny_images()).unwrap()
    );
    assert_eq!(parse_idx_labels(&gzip(&tiny_labels())).unwrap(), [7, 3]);
}

#[test]
fn parses_empty_sets() {
    let images = parse_idx_images(&idx_images(0, 28, 28, &[])).unwrap();
    assert_eq!((images.count, images.pixels.len()), (0, 0));
    assert!(parse_idx_labels(&gzip(&idx_labels(0, &[])))
        .unwrap()
        .is_empty());
}

#[test]
fn gzip_is_detected_by_content_not_name() {
    let dir = scratch_dir("by-content");
    // Compressed data under a raw name, raw data under a `.gz` name.
    let a = write(&dir, "images.idx", &gzip(&tiny_images()));
    let b = write(&dir, "labels.gz", &tiny_labels());
    assert_eq!(read_idx_images(&a).unwrap().count, 2);
    assert_eq!(read_idx_labels(&b).unwrap(), [7, 3]);
}

#[test]
fn loads_mnist_layout_from_gzip_and_raw_files() {
    let dir = tiny_mnist_dir("layout");
    let mnist = load_mnist(&dir).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (2, 1));
    assert_eq!((mnist.train.rows(), mnist.train.cols()), (2, 3));
    assert_eq!(mnist.train.labels(), [7, 3]);
    assert_eq!(mnist.test.image(0), Some(&[9u8; 6][..]));
}

// ---------------------------------------------------------------------------------------------
// Every error, with its message.

#[test]
fn wrong_magic() {
    let err = parse_idx_images(&tiny_labels()).unwrap_err();
    assert!(matches!(
        err,
        DataError::BadMagic {
            expected: 0x803,
            found: 0x801,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("expected 0x00000803, found 0x00000801"),
        "{msg}"
    );
    assert!(msg.contains("<memory>"), "{msg}");

    let err = parse_idx_labels(&gzip(&[1, 2, 3, 4, 0, 0, 0, 0])).unwrap_err();
    assert!(err.to_string().contains("found 0x01020304"), "{err}");
}

#[test]
fn truncated_payload_and_header() {
    let mut bytes = tiny_images();
    bytes.pop();
    for input in [bytes.clone(), gzip(&bytes)] {
        let err = parse_idx_images(&input).unwrap_err();
        assert!(matches!(
            err,
            DataError::Truncated {
                part: IdxPart::Payload,
                expected: 28,
                actual: 27,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "<memory>: truncated IDX payload: expected 28 bytes, found 27"
        );
    }
    let err = parse_idx_images(&tiny_images()[..10]).unwrap_err();
    assert!(matches!(
        err,
        DataError::Truncated {
            part: IdxPart::Header,
            expected: 16,
            actual: 10,
            ..
        }
    ));
    assert!(err.to_string().contains("truncated IDX header"), "{err}");
    assert!(matches!(
        parse_idx_labels(&[]),
        Err(DataError::Truncated {
            part: IdxPart::Header,
            actual: 0,
            ..
        })
    ));
}

#[test]
fn huge_claim_fails_without_allocating_it() {
    // 10^9 images of 28x28 claimed, three pixels present.
    let raw = idx_images(1_000_000_000, 28, 28, &[1, 2, 3]);
    let (result, largest) = largest_allocation(|| parse_idx_images(&raw));
    let err = result.unwrap_err();
    assert!(matches!(
        err,
        DataError::Truncated {
            expected: 784_000_000_016,
            actual: 19,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("expected 784000000016 bytes, found 19"),
        "{err}"
    );
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    // Compressed, the claim is refused before inflating: no deflate stream expands so much.
    let gz = gzip(&raw);
    let (result, largest) = largest_allocation(|| parse_idx_images(&gz));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ImplausibleClaim {
                claimed: 784_000_000_016,
                ratio: 1032,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    // The same through a file.
    let dir = scratch_dir("huge");
    let path = write(&dir, "huge-labels", &gzip(&idx_labels(u32::MAX, &[1, 2])));
    let (result, largest) = largest_allocation(|| read_idx_labels(&path));
    assert!(matches!(
        result,
        Err(DataError::ImplausibleClaim {
            claimed: 4_294_967_303,
            ..
        })
    ));
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    // Dimensions whose product overflows u64 are an error, not a wrapped or saturated size.
    let err = parse_idx_images(&idx_images(u32::MAX, u32::MAX, u32::MAX, &[])).unwrap_err();
    assert!(
        matches!(err, DataError::TooLarge { bytes: None, .. }),
        "{err:?}"
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = tiny_labels();
    bytes.extend_from_slice(&[0, 0, 0]);
    let err = parse_idx_labels(&bytes).unwrap_err();
    assert!(matches!(
        err,
        DataError::TrailingBytes {
            expected: 10,
            extra: 3,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "<memory>: trailing data: 3 bytes past the 10 bytes the IDX header describes"
    );
    // Gzip input is inflated no further than the claim plus one byte, so how much more the
    // stream holds is not counted.
    let err = parse_idx_labels(&gzip(&bytes)).unwrap_err();
    assert!(matches!(err, DataError::GzipTrailing { expected: 10, .. }));
    assert_eq!(
        err.to_string(),
        "<memory>: the gzip stream inflates past the 10 bytes the IDX header describes (decompression stopped there)"
    );
}

#[test]
fn zero_dimensions() {
    let err = parse_idx_images(&idx_images(1, 0, 28, &[])).unwrap_err();
    assert!(matches!(
        err,
        DataError::BadDimensions {
            rows: 0,
            cols: 28,
            ..
        }
    ));
    assert!(
        err.to_string().contains("found 0 rows and 28 columns"),
        "{err}"
    );
}

#[test]
fn label_out_of_range() {
    let err = parse_idx_labels(&idx_labels(4, &[1, 2, 10, 200])).unwrap_err();
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            index: 2,
            value: 10,
            classes: 10,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "<memory>: label 10 at index 2 is out of range (must be < 10)"
    );
    let err = Dataset::new(vec![0; 2], vec![0, 2], 1, 1, 2).unwrap_err();
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            index: 1,
            value: 2,
            ..
        }
    ));
}

#[test]
fn corrupt_gzip() {
    let mut gz = gzip(&tiny_images());
    for b in gz.iter_mut().skip(10).take(8) {
        *b ^= 0x5a;
    }
    let err = parse_idx_images(&gz).unwrap_err();
    assert!(matches!(err, DataError::GzipCorrupt { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("<memory>: corrupt gzip stream"),
        "{err}"
    );

    // A flipped checksum is corrupt too.
    let mut gz = gzip(&tiny_images());
    let n = gz.len();
    gz[n - 6] ^= 1;
    let err = parse_idx_images(&gz).unwrap_err();
    assert!(matches!(err, DataError::GzipCorrupt { .. }), "{err:?}");
}

#[test]
fn truncated_gzip() {
    let gz = gzip(&tiny_images());
    for cut in [gz.len() - 1, gz.len() - 8, gz.len() / 2, 4] {
        let err = parse_idx_images(&gz[..cut]).unwrap_err();
        assert!(
            matches!(err, DataError::GzipTruncated { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("<memory>: truncated gzip stream"),
            "{err}"
        );
    }
}

#[test]
fn errors_name_the_file() {
    let dir = scratch_dir("names");
    let path = write(&dir, "bad-labels.gz", &gzip(&idx_labels(1, &[42])));
    let err = read_idx_labels(&path).unwrap_err();
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");

    let err = read_idx_images(&dir.join("nope")).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope: I/O error"), "{err}");
}

#[test]
fn missing_file() {
    let dir = tiny_mnist_dir("missing-file");
    std::fs::remove_file(dir.join(TEST_LABELS)).unwrap();
    let err = load_mnist(&dir).unwrap_err();
    assert!(matches!(&err, DataError::MissingFile { name, .. } if name == TEST_LABELS));
    let msg = err.to_string();
    assert!(
        msg.contains("missing file t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz)"),
        "{msg}"
    );
}

#[test]
fn missing_dir() {
    let dir = scratch_dir("missing-dir").join("absent");
    let err = load_mnist(&dir).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }));
    let msg = err.to_string();
    // The library does not know where the path came from (a flag, the environment), so it
    // names the path and what belongs in it, not a variable to set.
    assert!(
        msg.contains("absent") && msg.contains("MNIST IDX files"),
        "{msg}"
    );
    assert!(!msg.contains(MNIST_DIR_ENV), "{msg}");
}

#[test]
fn count_mismatch() {
    let dir = tiny_mnist_dir("count");
    write(&dir, TEST_LABELS, &idx_labels(2, &[1, 2]));
    let err = load_mnist(&dir).unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            images: 1,
            labels: 2,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("holds 1 images but") && msg.contains("holds 2 labels"),
        "{msg}"
    );
    assert!(
        msg.contains(TEST_IMAGES) && msg.contains(TEST_LABELS),
        "{msg}"
    );

    let err = Dataset::new(vec![0; 6], vec![0], 1, 3, 10).unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            images: 2,
            labels: 1,
            ..
        }
    ));
}

#[test]
fn bad_shape() {
    for (pixels, rows, cols, classes) in
        [(6, 0, 3, 10), (6, 2, 3, 0), (7, 2, 3, 10), (6, 2, 3, 300)]
    {
        let err = Dataset::new(vec![0; pixels], vec![0], rows, cols, classes).unwrap_err();
        assert!(matches!(err, DataError::BadShape { .. }), "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dataset.

#[test]
fn dataset_accessors_split_and_take() {
    let ds = Dataset::new((0..12).collect(), vec![0, 1, 2, 1], 1, 3, 3).unwrap();
    assert_eq!(
        (ds.len(), ds.features(), ds.rows(), ds.cols()),
        (4, 3, 1, 3)
    );
    assert_eq!(ds.image(1), Some(&[3u8, 4, 5][..]));
    assert_eq!(
        (ds.label(3), ds.label(4), ds.image(4)),
        (Some(1), None, None)
    );
    assert_eq!(ds.class_counts(), [1, 2, 1]);

    let (a, b) = ds.split(3);
    assert_eq!((a.len(), b.len()), (3, 1));
    assert_eq!(b.images(), [9, 10, 11]);
    assert_eq!(b.labels(), [1]);
    assert_eq!(b.image(0), Some(&[9u8, 10, 11][..]));
    let (c, d) = b.split(7);
    assert_eq!((c.len(), d.len(), d.is_empty()), (1, 0, true));
    assert_eq!(d.images(), [] as [u8; 0]);

    let t = ds.split(1).1.take(2);
    assert_eq!(
        (t.labels(), t.images()),
        (&[1u8, 2][..], &[3u8, 4, 5, 6, 7, 8][..])
    );
    assert_eq!(ds.take(99).len(), 4);
}

#[test]
fn write_batch_scales_and_one_hots() {
    let ds = Dataset::new(vec![0, 255, 51, 102, 204, 153], vec![2, 0, 1], 1, 2, 3).unwrap();
    let mut x = [9.0f32; 4];
    let mut y = [9.0f32; 6];
    ds.write_batch_f32(&[2, 0], &mut x, &mut y).unwrap();
    assert_eq!(x, [0.8, 0.6, 0.0, 1.0]);
    assert_eq!(y, [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);

    let mut x64 = [0.0f64; 2];
    let mut y64 = [0.0f64; 3];
    ds.write_batch(&[1], &mut x64, &mut y64).unwrap();
    assert_eq!(x64, [0.2, 0.4]);
    assert_eq!(y64, [1.0, 0.0, 0.0]);

    let mut classes = [0.0f32; 3];
    ds.write_class_indices(&[0, 1, 2], &mut classes).unwrap();
    assert_eq!(classes, [2.0, 0.0, 1.0]);

    // Views index from their own start.
    let tail = ds.split(1).1;
    tail.write_batch(&[1], &mut x64, &mut y64).unwrap();
    assert_eq!((x64, y64), ([0.8, 0.6], [0.0, 1.0, 0.0]));
}

#[test]
fn write_batch_errors_leave_buffers_untouched() {
    let ds = Dataset::new(vec![7; 8], vec![0, 1, 0, 1], 1, 2, 2).unwrap();
    let mut x = [5.0f32; 4];
    let mut y = [5.0f32; 4];
    let err = ds.write_batch(&[0, 4], &mut x, &mut y).unwrap_err();
    assert!(matches!(
        err,
        DataError::IndexOutOfRange { index: 4, len: 4 }
    ));
    assert_eq!(
        err.to_string(),
        "sample index 4 out of range for a dataset of 4 samples"
    );
    let err = ds.write_batch(&[0, 1], &mut x[..3], &mut y).unwrap_err();
    assert!(matches!(
        err,
        DataError::BufferSize {
            buffer: "images",
            expected: 4,
            actual: 3
        }
    ));
    let err = ds.write_batch(&[0, 1], &mut x, &mut y[..3]).unwrap_err();
    assert_eq!(err.to_string(), "labels buffer has length 3, expected 4");
    assert_eq!((x, y), ([5.0; 4], [5.0; 4]));
    // An index valid in the parent is out of range in a view.
    assert!(ds.take(2).write_images(&[2], &mut x[..2]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Batching.

fn is_permutation(v: &[usize]) -> bool {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.iter().copied().eq(0..v.len())
}

#[test]
fn shuffles_are_deterministic_permutations() {
    let a = shuffled_indices(1000, 7, 3).unwrap();
    assert!(is_permutation(&a));
    assert_eq!(a, shuffled_indices(1000, 7, 3).unwrap());
    assert_ne!(a, shuffled_indices(1000, 7, 4).unwrap());
    assert_ne!(a, shuffled_indices(1000, 8, 3).unwrap());
    assert_ne!(a, (0..1000).collect::<Vec<_>>());

    // Epoch k's order does not depend on the epochs before it, and the buffer is reused.
    let mut order = EpochOrder::new(1000, 7).unwrap();
    order.shuffle(0);
    let ptr = order.indices().as_ptr();
    assert_eq!(order.shuffle(3), &a[..]);
    assert_eq!(order.indices().as_ptr(), ptr);
    assert_eq!(order.sequential(), &(0..1000).collect::<Vec<_>>()[..]);
    assert_eq!(
        (order.len(), order.seed(), order.is_empty()),
        (1000, 7, false)
    );
    assert!(shuffled_indices(0, 1, 1).unwrap().is_empty());
    assert_eq!(shuffled_indices(1, 1, 1).unwrap(), [0]);
}

#[test]
fn batches_cover_the_order() {
    let mut order = EpochOrder::new(10, 1).unwrap();
    order.shuffle(0);
    let b = order.batches(4).unwrap();
    assert_eq!(b.len(), 3);
    let all: Vec<&[usize]> = b.collect();
    assert_eq!(all.iter().map(|s| s.len()).collect::<Vec<_>>(), [4, 4, 2]);
    assert_eq!(all.concat(), order.indices());
    assert_eq!(
        batches(&[1, 2], 5).unwrap().collect::<Vec<_>>(),
        [&[1, 2][..]]
    );
    assert_eq!(batches(&[], 5).unwrap().count(), 0);

    let err = order.batches(0).unwrap_err();
    assert!(matches!(err, DataError::ZeroBatchSize));
    assert_eq!(err.to_string(), "batch size must be at least 1, got 0");
}

// ---------------------------------------------------------------------------------------------
// Synthetic digits.

#[test]
fn synthetic_is_deterministic_balanced_and_varied() {
    let a = synthetic_digits(500, 11).unwrap();
    let b = synthetic_digits(500, 11).unwrap();
    assert_eq!((a.images(), a.labels()), (b.images(), b.labels()));
    assert_ne!(a.images(), synthetic_digits(500, 12).unwrap().images());
    assert_eq!(a.class_counts(), vec![50; 10]);
    assert_eq!(
        synthetic_digits(25, 0).unwrap().class_counts(),
        [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    );
    assert_eq!((a.rows(), a.cols(), a.classes()), (28, 28, 10));

    // Not a shuffled sequence of 0, 1, 2, ...
    assert_ne!(a.labels()[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Every image has ink but is mostly background, and no two are identical.
    let mut seen = std::collections::HashSet::new();
    for i in 0..a.len() {
        let img = a.image(i).unwrap();
        let inked = img.iter().filter(|&&p| p > 128).count();
        assert!(
            (15..400).contains(&inked),
            "image {i} has {inked} inked pixels"
        );
        assert!(
            seen.insert(img.to_vec()),
            "image {i} repeats an earlier one"
        );
    }
}

#[test]
fn synthetic_mnist_shape() {
    let m = synthetic_mnist(3).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (6000, 1000));
    assert_eq!(
        m.train.images(),
        synthetic_digits(6000, 3).unwrap().images()
    );
    assert_ne!(m.test.images(), m.train.take(1000).images());
    assert_eq!(m.test.class_counts(), vec![100; 10]);
}

/// A 784-32-10 ReLU MLP trained with plain SGD on softmax cross-entropy, written out by hand
/// so that this test needs nothing but the data module.
struct Mlp {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

const HIDDEN: usize = 32;

impl Mlp {
    fn new(inputs: usize) -> Self {
        let mut state = 1u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let a1 = (6.0 / (inputs + HIDDEN) as f32).sqrt();
        let a2 = (6.0 / (HIDDEN + 10) as f32).sqrt();
        Mlp {
            w1: (0..inputs * HIDDEN).map(|_| uniform() * a1).collect(),
            b1: vec![0.0; HIDDEN],
            w2: (0..HIDDEN * 10).map(|_| uniform() * a2).collect(),
            b2: vec![0.0; 10],
        }
    }

    /// Hidden activations into `h`, class probabilities into `p`.
    fn forward(&self, x: &[f32], h: &mut [f32; HIDDEN], p: &mut [f32; 10]) {
        h.copy_from_slice(&self.b1);
        for (&xi, w) in x.iter().zip(self.w1.chunks_exact(HIDDEN)) {
            if xi != 0.0 {
                for (hj, wj) in h.iter_mut().zip(w) {
                    *hj += xi * wj;
                }
            }
        }
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        p.copy_from_slice(&self.b2);
        for (&hj, w) in h.iter().zip(self.w2.chunks_exact(10)) {
            for (pk, wk) in p.iter_mut().zip(w) {
                *pk += hj * wk;
            }
        }
        let max = p.iter().copied().fold(f32::MIN, f32::max);
        let mut sum = 0.0;
        for v in p.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        p.iter_mut().for_each(|v| *v /= sum);
    }

    fn sgd_step(&mut self, x: &[f32], y: &[f32], lr: f32) {
        let features = self.w1.len() / HIDDEN;
        let n = y.len() / 10;
        let (mut gw1, mut gb1) = (vec![0.0; self.w1.len()], [0.0; HIDDEN]);
        let (mut gw2, mut gb2) = (vec![0.0; self.w2.len()], [0.0; 10]);
        let (mut h, mut p) = ([0.0; HIDDEN], [0.0; 10]);
        for (xs, ys) in x.chunks_exact(features).zip(y.chunks_exact(10)).take(n) {
            self.forward(xs, &mut h, &mut p);
            let d: Vec<f32> = p.iter().zip(ys).map(|(p, y)| p - y).collect();
            let mut dh = [0.0; HIDDEN];
            for j in 0..HIDDEN {
                for k in 0..10 {
                    gw2[j * 10 + k] += h[j] * d[k];
                    dh[j] += self.w2[j * 10 + k] * d[k];
                }
                if h[j] <= 0.0 {
                    dh[j] = 0.0;
                }
            }
            gb2.iter_mut().zip(&d).for_each(|(g, d)| *g += d);
            gb1.iter_mut().zip(&dh).for_each(|(g, d)| *g += d);
            for (&xi, g) in xs.iter().zip(gw1.chunks_exact_mut(HIDDEN)) {
                if xi != 0.0 {
                    g.iter_mut().zip(&dh).for_each(|(g, d)| *g += xi * d);
                }
            }
        }
        let s = lr / n as f32;
        for (w, g) in [
            (&mut self.w1[..], &gw1[..]),
            (&mut self.b1[..], &gb1[..]),
            (&mut self.w2[..], &gw2[..]),
            (&mut self.b2[..], &gb2[..]),
        ] {
            w.iter_mut().zip(g).for_each(|(w, g)| *w -= s * g);
        }
    }

    fn accuracy(&self, ds: &Dataset) -> f32 {
        let mut x = vec![0.0; ds.features()];
        let (mut h, mut p) = ([0.0; HIDDEN], [0.0; 10]);
        let correct = (0..ds.len())
            .filter(|&i| {
                ds.write_images(&[i], &mut x).unwrap();
                self.forward(&x, &mut h, &mut p);
                let guess = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                guess == usize::from(ds.label(i).unwrap())
            })
            .count();
        correct as f32 / ds.len() as f32
    }
}

#[test]
fn synthetic_digits_are_learnable_by_a_small_mlp() {
    let data = synthetic_mnist(0).unwrap();
    let (train, features) = (&data.train, data.train.features());
    let mut mlp = Mlp::new(features);
    let batch = 32;
    let mut x = vec![0.0f32; batch * features];
    let mut y = vec![0.0f32; batch * 10];
    let mut order = EpochOrder::new(train.len(), 1).unwrap();
    for epoch in 0..3 {
        order.shuffle(epoch);
        for idx in order.batches(batch).unwrap() {
            let (bx, by) = (&mut x[..idx.len() * features], &mut y[..idx.len() * 10]);
            train.write_batch(idx, bx, by).unwrap();
            mlp.sgd_step(bx, by, 0.1);
        }
    }
    let accuracy = mlp.accuracy(&data.test);
    println!("synthetic test accuracy after 3 epochs: {accuracy:.3}");
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
    // Hard enough that it is not solved perfectly.
    assert!(accuracy < 0.999, "test accuracy {accuracy}");
}

// ---------------------------------------------------------------------------------------------
// The real MNIST files, when present.

fn real_mnist_dir() -> Option<PathBuf> {
    let dir = mnist_dir_from_env().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist")
    });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipping: no MNIST at {} (set {MNIST_DIR_ENV})",
            dir.display()
        );
        None
    }
}

#[test]
fn real_mnist_loads() {
    let Some(dir) = real_mnist_dir() else { return };
    let mnist = load_mnist(&dir).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    assert_eq!(
        (
            mnist.train.rows(),
            mnist.train.cols(),
            mnist.train.features()
        ),
        (28, 28, 784)
    );
    assert_eq!(mnist.train.label(0), Some(5));
    assert_eq!(mnist.test.label(0), Some(7));
    assert_eq!(mnist.train.class_counts()[1], 6742);
    assert_eq!(mnist.test.class_counts().iter().sum::<usize>(), 10_000);
    let first = mnist.train.image(0).unwrap();
    assert_eq!((first[0], first.iter().copied().max()), (0, Some(255)));
}

// ---------------------------------------------------------------------------------------------
// Nothing panics on hostile input.

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = v;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_idx_images(&bytes);
        let _ = parse_idx_labels(&bytes);
        // With the gzip magic in front, the decoder sees the noise too.
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        let _ = parse_idx_images(&gz);
        let _ = parse_idx_labels(&gz);
    }

    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        compressed in any::<bool>(),
    ) {
        let (mut images, mut labels) = (tiny_images(), tiny_labels());
        if compressed {
            images = gzip(&images);
            labels = gzip(&labels);
        }
        let images = mutate(images, &edits, cut);
        let labels = mutate(labels, &edits, cut);
        if let Ok(parsed) = parse_idx_images(&images) {
            prop_assert_eq!(parsed.pixels.len(), parsed.count * parsed.rows * parsed.cols);
        }
        if let Ok(parsed) = parse_idx_labels(&labels) {
            prop_assert!(parsed.iter().all(|&l| l < 10));
        }
    }

    #[test]
    fn valid_files_round_trip(
        count in 0u32..6, rows in 1u32..5, cols in 1u32..5, seed in any::<u8>(),
        compressed in any::<bool>(),
    ) {
        let n = (count * rows * cols) as usize;
        let pixels: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let labels: Vec<u8> = (0..count).map(|i| ((i + u32::from(seed)) % 10) as u8).collect();
        let (mut ib, mut lb) = (idx_images(count, rows, cols, &pixels), idx_labels(count, &labels));
        if compressed {
            ib = gzip(&ib);
            lb = gzip(&lb);
        }
        let images = parse_idx_images(&ib).unwrap();
        prop_assert_eq!(&images.pixels, &pixels);
        prop_assert_eq!(parse_idx_labels(&lb).unwrap(), labels.clone());
        let ds = Dataset::new(images.pixels, labels, rows as usize, cols as usize, 10).unwrap();
        prop_assert_eq!(ds.len(), count as usize);
    }
}
