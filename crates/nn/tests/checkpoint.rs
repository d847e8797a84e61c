//! Checkpoints: bit-identical roundtrips, validation of what is loaded, atomic writes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    write_atomic, Activation, Adam, Dense, FitConfig, Loss, Metric, NnError, Sequential,
};
use safetensors::SafeTensors;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dendrite-nn-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model(seed: u64, hidden: usize, extra_layer: bool) -> Sequential {
    let mut m = Sequential::new().with_seed(seed);
    m.add(
        Dense::new(hidden)
            .input_dim(784)
            .activation(Activation::Relu),
    );
    m.add(Dense::new(10).activation(Activation::Softmax));
    if extra_layer {
        m.add(Dense::new(10));
    }
    m.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

fn bits(a: &ndarray::Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn save_load_predict_is_bit_identical() {
    let dir = scratch("roundtrip");
    let path = dir.join("weights.safetensors");
    let data = synthetic_digits(300, 1).unwrap();
    let mut trained = model(1, 32, false);
    trained
        .fit(&data, FitConfig::default().epochs(1).verbosity(0))
        .unwrap();
    trained.save_weights(&path).unwrap();

    let mut fresh = model(2, 32, false);
    assert_ne!(fresh.weights().unwrap(), trained.weights().unwrap());
    fresh.load_weights(&path).unwrap();
    assert_eq!(fresh.weights().unwrap(), trained.weights().unwrap());
    let (a, b) = (
        trained.predict(&data, 64).unwrap(),
        fresh.predict(&data, 64).unwrap(),
    );
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(
        trained.evaluate(&data, 32).unwrap(),
        fresh.evaluate(&data, 32).unwrap()
    );

    // Other tools see plain named tensors.
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<_> = file.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dense_1/bias",
            "dense_1/kernel",
            "dense_2/bias",
            "dense_2/kernel"
        ]
    );
    let kernel = file.tensor("dense_1/kernel").unwrap();
    assert_eq!(kernel.shape(), &[784, 32]);
    assert_eq!(kernel.dtype(), safetensors::Dtype::F32);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

fn expect_load_error(model: &mut Sequential, path: &Path) -> NnError {
    let before = model.weights().unwrap();
    let err = model.load_weights(path).unwrap_err();
    assert_eq!(
        model.weights().unwrap(),
        before,
        "a failed load must change nothing"
    );
    err
}

#[test]
fn missing_extra_and_misshaped_tensors_are_rejected() {
    let dir = scratch("mismatch");
    let small = dir.join("small.safetensors");
    let big = dir.join("big.safetensors");
    let wide = dir.join("wide.safetensors");
    model(0, 32, false).save_weights(&small).unwrap();
    model(0, 32, true).save_weights(&big).unwrap();
    model(0, 64, false).save_weights(&wide).unwrap();

    let err = expect_load_error(&mut model(1, 32, true), &small);
    assert!(
        matches!(err, NnError::MissingTensor { ref name, .. } if name == "dense_3/kernel"),
        "{err}"
    );
    let err = expect_load_error(&mut model(1, 32, false), &big);
    assert!(
        matches!(err, NnError::UnexpectedTensor { ref name, .. } if name.starts_with("dense_3/")),
        "{err}"
    );
    let err = expect_load_error(&mut model(1, 32, false), &wide);
    match &err {
        NnError::TensorShape {
            name,
            expected,
            actual,
            ..
        } => {
            assert_eq!(name, "dense_1/kernel");
            assert_eq!(
                (expected.as_slice(), actual.as_slice()),
                (&[784, 32][..], &[784, 64][..])
            );
        }
        other => panic!("expected TensorShape, got {other}"),
    }
    assert!(err.to_string().contains("wide.safetensors"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_dtype_is_rejected() {
    let dir = scratch("dtype");
    let path = dir.join("f64.safetensors");
    let mut wide = Sequential::<f64>::default();
    wide.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    wide.add(Dense::new(10).activation(Activation::Softmax));
    wide.build().unwrap();
    wide.save_weights(&path).unwrap();
    let err = expect_load_error(&mut model(0, 32, false), &path);
    assert!(
        matches!(err, NnError::TensorDtype { expected: "f32", ref actual, .. } if actual == "f64"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn corrupt_and_truncated_files_are_rejected() {
    let dir = scratch("corrupt");
    let good = dir.join("good.safetensors");
    model(0, 32, false).save_weights(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = expect_load_error(&mut model(1, 32, false), &truncated);
    assert!(matches!(err, NnError::CorruptCheckpoint { .. }), "{err}");

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a checkpoint",
    )
    .unwrap();
    let err = expect_load_error(&mut model(1, 32, false), &garbage);
    assert!(matches!(err, NnError::CorruptCheckpoint { .. }), "{err}");

    let err = expect_load_error(&mut model(1, 32, false), &dir.join("absent.safetensors"));
    assert!(matches!(err, NnError::Io { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_failed_write_leaves_the_old_checkpoint_intact() {
    let dir = scratch("atomic");
    let path = dir.join("weights.safetensors");
    let first = model(0, 32, false);
    first.save_weights(&path).unwrap();
    let old = std::fs::read(&path).unwrap();

    // Simulate a crash mid-write: the writer fails after half the bytes.
    let err = write_atomic(&path, |f| {
        f.write_all(&old[..old.len() / 2])?;
        Err(std::io::Error::other("simulated failure"))
    })
    .unwrap_err();
    assert!(matches!(err, NnError::Io { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), old);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "the temporary file is removed"
    );

    // A save that cannot even start (its directory is gone) fails cleanly too.
    let err = model(1, 32, false)
        .save_weights(dir.join("missing/dir/w.safetensors"))
        .unwrap_err();
    assert!(matches!(err, NnError::Io { .. }), "{err}");

    // And a successful save replaces the file as a whole.
    let second = model(5, 32, false);
    second.save_weights(&path).unwrap();
    let mut check = model(9, 32, false);
    check.load_weights(&path).unwrap();
    assert_eq!(check.weights().unwrap(), second.weights().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn dev_zero_and_directories_are_refused_not_read() {
    let mut m = model(1, 4, false);
    let before = m.weights().unwrap();
    let err = m.load_weights("/dev/zero").unwrap_err();
    assert!(
        matches!(
            &err,
            NnError::NotAFile {
                kind: "a character device",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "/dev/zero: a character device, not a regular file: checkpoints are read only from regular files, whose length bounds what is read"
    );
    let dir = scratch("dir-as-checkpoint");
    let err = m.load_weights(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NotAFile {
                kind: "a directory",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.weights().unwrap(), before);
}

#[cfg(target_os = "linux")]
#[test]
fn a_special_file_longer_than_its_length_is_refused() {
    let mut m = model(1, 4, false);
    let err = m.load_weights("/proc/self/status").unwrap_err();
    assert!(matches!(err, NnError::FileGrew { len: 0, .. }), "{err:?}");
}

#[test]
fn a_file_longer_than_any_checkpoint_of_the_model_is_refused_unread() {
    let dir = scratch("too-long");
    let path = dir.join("big.safetensors");
    // A good checkpoint followed by a sparse 1 GiB: its header fits the model, and the file
    // is refused as longer than that header and the model's data make it, before the data
    // is read.
    let mut m = model(1, 4, false);
    m.save_weights(&path).unwrap();
    let exact = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    let err = m.load_weights(&path).unwrap_err();
    assert!(
        matches!(err, NnError::FileTooLarge { len, limit, .. } if len == 1 << 30 && limit == exact),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the file holds 1073741824 bytes, more than the {exact} bytes a checkpoint of this model can take",
            path.display()
        )
    );
    // A sparse file of zeros claims an empty header, which is not the table of tensors.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    let err = m.load_weights(&path).unwrap_err();
    assert!(matches!(err, NnError::CorruptCheckpoint { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn saving_to_the_longest_legal_file_names_works() {
    let dir = scratch("long-names");
    let m = model(1, 4, false);
    for len in [250, 255] {
        let name = format!("{}.safetensors", "w".repeat(len - ".safetensors".len()));
        assert_eq!(name.len(), len);
        let path = dir.join(&name);
        m.save_weights(&path).unwrap();
        let mut copy = model(2, 4, false);
        copy.load_weights(&path).unwrap();
        assert_eq!(copy.weights().unwrap(), m.weights().unwrap());
        // The temporary file was renamed; nothing else is left.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(&name)]);
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}
