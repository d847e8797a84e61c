//! Hostile bytes: random and mutated files for the IDX and checkpoint readers, random feeds for
//! a plan. Never a panic: an error or a valid result, and no allocation larger than the file
//! justifies.
//!
//! The byte-level IDX parsers have their own properties in `crates/nn/tests/data.rs`
//! (`random_bytes_never_panic`, `mutated_files_never_panic`, `valid_files_round_trip`); here the
//! whole loader (`load_mnist` on a directory) gets the mutated files, and the checkpoint reader
//! (`Sequential::load_weights`) gets mutated and forged safetensors files.

use crate::common::{
    classifier, gzip, idx_images, idx_labels, justified, largest_allocation, Scratch,
};
use dendrite_graph::{compile, Graph};
use dendrite_nn::data::{load_mnist, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use dendrite_nn::{NnError, Sequential};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use std::path::Path;

/// Overwrites bytes at the (wrapped) positions of `edits`, then cuts at `cut` (wrapped).
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

/// 256 cases a property; a failure is reported with its minimal input (not saved to a file:
/// proptest looks for one beside a `lib.rs` or `main.rs`, which a test module does not have).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

// ---------------------------------------------------------------------------------------------
// IDX files, through the whole loader.

fn mnist_files() -> [(&'static str, Vec<u8>); 4] {
    let pixels: Vec<u8> = (0..3 * 6).map(|i| (i * 37 % 256) as u8).collect();
    [
        (TRAIN_IMAGES, idx_images(3, 2, 3, &pixels)),
        (TRAIN_LABELS, idx_labels(3, &[4, 0, 9])),
        (TEST_IMAGES, idx_images(1, 2, 3, &pixels[..6])),
        (TEST_LABELS, idx_labels(1, &[7])),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mnist_loader_survives_mutated_files(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        compressed in any::<bool>(),
    ) {
        let dir = Scratch::new("fuzz-mnist");
        let mut bound = 0;
        for (k, (name, bytes)) in mnist_files().into_iter().enumerate() {
            let bytes = if compressed { gzip(&bytes) } else { bytes };
            let bytes = if k == which { mutate(bytes, &edits, cut) } else { bytes };
            let file = if compressed { format!("{name}.gz") } else { name.to_owned() };
            bound = bound.max(justified(&file, bytes.len()));
            dir.write(&file, &bytes);
        }
        let (result, largest) = largest_allocation(|| load_mnist(dir.path()));
        prop_assert!(largest <= bound, "{} bytes", largest);
        match result {
            Ok(mnist) => {
                for set in [&mnist.train, &mnist.test] {
                    prop_assert_eq!(set.images().len(), set.len() * set.features());
                    prop_assert!(set.labels().iter().all(|&l| l < 10));
                }
            }
            // Every error names the file (or the directory) it is about.
            Err(e) => prop_assert!(
                e.to_string().contains(&*dir.path().to_string_lossy()),
                "{}", e
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

/// The parameters of `classifier(_, 3, 4, 2)`, in order, with their shapes.
const PARAMS: [(&str, &[usize]); 4] = [
    ("dense_1/kernel", &[3, 4]),
    ("dense_1/bias", &[4]),
    ("dense_2/kernel", &[4, 2]),
    ("dense_2/bias", &[2]),
];

fn model() -> Sequential {
    classifier(1, 3, 4, 2)
}

/// Writes `bytes` as a checkpoint and loads it into `model`; checks that the load allocates
/// no more than the file justifies, and that a failed load names the file and changes nothing.
fn load(
    model: &mut Sequential,
    dir: &Scratch,
    bytes: &[u8],
) -> Result<Result<(), NnError>, TestCaseError> {
    let path = dir.write("fuzz.safetensors", bytes);
    let before = model.weights().unwrap();
    let (result, largest) = largest_allocation(|| model.load_weights(&path));
    // The loader holds the file, views into it, and a little bookkeeping: nothing sized by
    // what the header claims.
    prop_assert!(
        largest <= justified("fuzz.safetensors", bytes.len()),
        "{} bytes for a {}-byte file",
        largest,
        bytes.len()
    );
    if let Err(e) = &result {
        prop_assert_ne!(variant(e), "other", "{:?}", e);
        prop_assert!(e.to_string().starts_with(&*path.to_string_lossy()), "{}", e);
        prop_assert_eq!(
            &model.weights().unwrap(),
            &before,
            "a failed load changed weights"
        );
    }
    Ok(result)
}

fn saved_checkpoint(dir: &Path) -> Vec<u8> {
    let path = dir.join("good.safetensors");
    classifier(0, 3, 4, 2).save_weights(&path).unwrap();
    std::fs::read(path).unwrap()
}

/// What a forged tensor entry says.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    dtype: (&'static str, usize),
    shape: Vec<u64>,
}

const DTYPES: [(&str, usize); 5] = [("F32", 4), ("F64", 8), ("BF16", 2), ("U8", 1), ("I64", 8)];

/// Entries for the model's parameters (each sometimes left out, given another dtype or shape),
/// sometimes plus an extra one; shapes are small, or now and then huge.
fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let dim = prop_oneof![8 => 0u64..5, 1 => any::<u64>()];
    let one = |name: &'static str, shape: &'static [usize]| {
        (
            0usize..20,
            prop_oneof![12 => Just(0), 1 => 1..DTYPES.len()],
            proptest::collection::vec(dim.clone(), 0..3),
        )
            .prop_map(move |(roll, dtype, random_shape)| {
                let shape = if roll < 18 {
                    shape.iter().map(|&d| d as u64).collect()
                } else {
                    random_shape
                };
                (roll > 0).then(|| Entry {
                    name: name.to_owned(),
                    dtype: DTYPES[dtype],
                    shape,
                })
            })
    };
    let extra = proptest::option::weighted(
        0.2,
        one("extra/kernel", &[1]).prop_filter_map("present", |e| e),
    );
    (
        one(PARAMS[0].0, PARAMS[0].1),
        one(PARAMS[1].0, PARAMS[1].1),
        one(PARAMS[2].0, PARAMS[2].1),
        one(PARAMS[3].0, PARAMS[3].1),
        extra,
    )
        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e].into_iter().flatten().collect())
}

/// A safetensors file for `entries`, with consistent offsets unless `lie` shifts one end
/// offset (`lie.0` picks which, `lie.1` by how much); data bytes are `0, 1, 2, ...`, at most
/// 512 of them. Also returns whether the file is consistent: no lie, no size overflowing, all
/// the data present.
fn forge(entries: &[Entry], lie: Option<(usize, u64)>) -> (Vec<u8>, bool) {
    let mut json = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut consistent = lie.is_none();
    let mut offset: u64 = 0;
    for (k, e) in entries.iter().enumerate() {
        // As safetensors computes it: elements first, then bytes.
        let bytes = e
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(e.dtype.1 as u64));
        let start = offset;
        let mut end = match bytes.and_then(|b| start.checked_add(b)) {
            Some(end) => end,
            None => {
                consistent = false;
                u64::MAX
            }
        };
        if let Some((which, by)) = lie
            && which % entries.len().max(1) == k
        {
            end = end.wrapping_add(by.max(1));
        }
        offset = end;
        let shape: Vec<String> = e.shape.iter().map(u64::to_string).collect();
        json += &format!(
            ",\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{start},{end}]}}",
            e.name,
            e.dtype.0,
            shape.join(",")
        );
    }
    json.push('}');
    let data_len = offset.min(512);
    consistent &= data_len == offset;
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.extend((0..data_len).map(|i| i as u8));
    (file, consistent)
}

/// The error `load_weights` must give for consistent `entries`, checked in its order: for each
/// parameter missing, dtype, shape; then tensors the model does not have.
fn expected(entries: &[Entry]) -> Option<&'static str> {
    for (name, shape) in PARAMS {
        let Some(e) = entries.iter().find(|e| e.name == name) else {
            return Some("MissingTensor");
        };
        if e.dtype.0 != "F32" {
            return Some("TensorDtype");
        }
        if e.shape.len() != shape.len() || e.shape.iter().zip(shape).any(|(&a, &b)| a != b as u64) {
            return Some("TensorShape");
        }
    }
    (entries.len() > PARAMS.len()).then_some("UnexpectedTensor")
}

fn variant(e: &NnError) -> &'static str {
    match e {
        NnError::CorruptCheckpoint { .. } => "CorruptCheckpoint",
        NnError::MissingTensor { .. } => "MissingTensor",
        NnError::UnexpectedTensor { .. } => "UnexpectedTensor",
        NnError::TensorShape { .. } => "TensorShape",
        NnError::TensorDtype { .. } => "TensorDtype",
        NnError::FileTooLarge { .. } => "FileTooLarge",
        _ => "other",
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn checkpoint_reader_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = Scratch::new("fuzz-ckpt-random");
        // With a plausible length prefix half of the time, so the JSON parser sees the noise.
        let mut file = bytes;
        if file.len() >= 8 && file[0] % 2 == 0 {
            let header = (file.len() as u64 - 8) / 2;
            file[..8].copy_from_slice(&header.to_le_bytes());
        }
        let _outcome = load(&mut model(), &dir, &file)?;
    }

    #[test]
    fn checkpoint_reader_survives_mutated_files(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let dir = Scratch::new("fuzz-ckpt-mutated");
        let good = saved_checkpoint(dir.path());
        let _outcome = load(&mut model(), &dir, &mutate(good, &edits, cut))?;
    }

    #[test]
    fn checkpoint_reader_checks_forged_headers(
        entries in entries(),
        lie in proptest::option::weighted(0.25, (any::<usize>(), any::<u64>())),
    ) {
        let dir = Scratch::new("fuzz-ckpt-forged");
        let (file, consistent) = forge(&entries, lie);
        let mut m = model();
        let result = load(&mut m, &dir, &file)?;
        // The header's names, dtypes and shapes are checked before the data: a mismatch is
        // reported as such even when the offsets lie.
        let want = expected(&entries).or((!consistent).then_some("CorruptCheckpoint"));
        match (&result, want) {
            (Ok(()), None) => {
                // Loaded: the weights are the forged data, read as little-endian f32.
                let loaded: Vec<u32> = m
                    .weights()
                    .unwrap()
                    .iter()
                    .flat_map(|(_, w)| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                    .collect();
                let written: Vec<u32> = file[file.len() - 4 * loaded.len()..]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                prop_assert_eq!(loaded, written);
            }
            // Offsets that lie past the model's data make the file longer than any checkpoint
            // of the model: refused unread, as too large.
            (Err(e), Some("CorruptCheckpoint")) if variant(e) == "FileTooLarge" => {}
            (Err(e), Some(v)) => prop_assert_eq!(variant(e), v, "{}", e),
            (r, w) => prop_assert!(false, "got {:?}, wanted {:?}", r, w),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plans fed random shapes and values.

/// Values that are valid labels (0, 1, 3; the more likely), and ones that are not.
const LABELS: [f32; 14] = [
    0.0,
    1.0,
    3.0,
    0.0,
    1.0,
    3.0,
    0.0,
    1.0,
    3.0,
    4.0,
    -1.0,
    0.5,
    f32::NAN,
    1e9,
];
const VALUES: [f32; 5] = [0.0, 1.0, -2.5, f32::NAN, f32::INFINITY];

fn array(shape: Vec<usize>, picks: &[usize], from: &[f32]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let values = (0..n).map(|i| from[picks.get(i).copied().unwrap_or(0) % from.len()]);
    ArrayD::from_shape_vec(IxDyn(&shape), values.collect()).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// A classifier's loss and gradients (matmul, broadcast add, log-softmax, one-hot, gather,
    /// reductions, and their reverse rules) run on any feed: an error exactly when the feed is
    /// wrong, never a panic.
    #[test]
    fn plan_survives_random_feeds(
        batch in 0usize..4,
        x_fits in proptest::bool::weighted(0.7),
        labels_fit in proptest::bool::weighted(0.7),
        x_random in proptest::collection::vec(0usize..4, 0..4),
        labels_random in proptest::collection::vec(0usize..4, 0..3),
        picks in proptest::collection::vec(any::<usize>(), 0..64),
        rename in proptest::bool::weighted(0.1),
    ) {
        // Mostly shapes that fit, so that the kernels run, on values good and bad.
        let x_shape = if x_fits { vec![batch, 3] } else { x_random };
        let label_shape = if labels_fit { vec![batch] } else { labels_random };
        let mut g = Graph::<f32>::new();
        let x = g.input("x", [None, Some(3)]).unwrap();
        let labels = g.input("labels", [None]).unwrap();
        let w = g.parameter("w", ArrayD::from_elem(IxDyn(&[3, 4]), 0.5)).unwrap();
        let b = g.parameter("b", ArrayD::from_elem(IxDyn(&[4]), 0.1)).unwrap();
        let xw = g.matmul(x, w).unwrap();
        let logits = g.add(xw, b).unwrap();
        let log_p = g.log_softmax(logits, 1).unwrap();
        let target = g.one_hot(labels, 4).unwrap();
        let picked = g.mul(target, log_p).unwrap();
        let per_example = g.sum(picked, &[1]).unwrap();
        let gathered = g.gather(logits, labels, 1).unwrap();
        let total = g.sum_all(gathered).unwrap();
        let mean = g.mean_all(per_example).unwrap();
        let loss = g.sub(total, mean).unwrap();
        let mut fetches = vec![loss];
        fetches.extend(dendrite_autodiff::grad(&mut g, loss, &[w, b]).unwrap());
        let mut plan = compile(&g, &fetches).unwrap();

        let xv = array(x_shape.clone(), &picks, &VALUES);
        let lv = array(label_shape.clone(), &picks, &LABELS);
        let name = if rename { "label" } else { "labels" };
        let result = plan.run(&g, &[("x", xv.view()), (name, lv.view())]).map(|_| ());
        let valid = !rename
            && x_shape.len() == 2
            && x_shape[1] == 3
            && label_shape.len() == 1
            && label_shape[0] == x_shape[0]
            && lv.iter().all(|&l| l == 0.0 || l == 1.0 || l == 3.0);
        prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
    }
}
