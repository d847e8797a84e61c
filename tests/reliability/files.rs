//! Bad files: checkpoints that do not fit the model or are damaged, IDX files that are
//! truncated, corrupt or lie about their size (a gzip header claiming more than deflate can
//! inflate, a stream longer than its claim), devices given as files, training and test images
//! of different sizes, a data directory that is not there, and what the `mnist` example makes
//! of them.

use crate::common::{
    classifier, digit_images, digit_labels, gzip, idx_images, idx_labels, justified,
    largest_allocation, weight_bits, write_mnist, Scratch,
};
use dendrite_nn::data::{
    load_mnist, read_idx_images, read_idx_labels, DataError, IdxPart, MAX_GZIP_RATIO, TEST_IMAGES,
    TEST_LABELS, TRAIN_IMAGES,
};
use dendrite_nn::{Activation, Dense, NnError, Sequential};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

// ---------------------------------------------------------------------------------------------
// Checkpoints. A refused load changes no weight.

/// Loads `path` into `model`, expects an error, and checks that the weights did not change.
fn refused_load(model: &mut Sequential, path: &std::path::Path) -> NnError {
    let before = weight_bits(model);
    let err = model.load_weights(path).unwrap_err();
    assert_eq!(weight_bits(model), before, "a failed load changed weights");
    err
}

fn three_layers(seed: u64) -> Sequential {
    let mut model = Sequential::new().with_seed(seed);
    model.add(Dense::new(4).input_dim(3).activation(Activation::Relu));
    model.add(Dense::new(2).activation(Activation::Softmax));
    model.add(Dense::new(2));
    model.build().unwrap();
    model
}

#[test]
fn checkpoint_missing_tensor() -> TestResult {
    let dir = Scratch::new("ckpt-missing");
    let path = dir.path().join("two.safetensors");
    classifier(0, 3, 4, 2).save_weights(&path)?;
    let err = refused_load(&mut three_layers(1), &path);
    assert!(matches!(&err, NnError::MissingTensor { name, .. } if name == "dense_3/kernel"));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: checkpoint has no tensor `dense_3/kernel`",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn checkpoint_extra_tensor() -> TestResult {
    let dir = Scratch::new("ckpt-extra");
    let path = dir.path().join("three.safetensors");
    three_layers(0).save_weights(&path)?;
    let err = refused_load(&mut classifier(1, 3, 4, 2), &path);
    let NnError::UnexpectedTensor { name, .. } = &err else {
        panic!("expected UnexpectedTensor, got {err}");
    };
    assert!(name == "dense_3/kernel" || name == "dense_3/bias", "{name}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: checkpoint holds tensor `{name}`, which the model does not have",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn checkpoint_misshaped_tensor() -> TestResult {
    let dir = Scratch::new("ckpt-shape");
    let path = dir.path().join("wide.safetensors");
    classifier(0, 3, 8, 2).save_weights(&path)?;
    let err = refused_load(&mut classifier(1, 3, 4, 2), &path);
    assert!(matches!(
        &err,
        NnError::TensorShape { name, expected, actual, .. }
            if name == "dense_1/kernel" && expected == &[3, 4] && actual == &[3, 8]
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor `dense_1/kernel` has shape [3, 8], but the model's parameter has shape \
             [3, 4]",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn checkpoint_wrong_dtype() -> TestResult {
    let dir = Scratch::new("ckpt-dtype");
    let path = dir.path().join("f64.safetensors");
    let mut wide = Sequential::<f64>::default();
    wide.add(Dense::new(4).input_dim(3).activation(Activation::Relu));
    wide.add(Dense::new(2).activation(Activation::Softmax));
    wide.build()?;
    wide.save_weights(&path)?;
    let err = refused_load(&mut classifier(1, 3, 4, 2), &path);
    assert!(
        matches!(&err, NnError::TensorDtype { expected: "f32", actual, .. } if actual == "f64")
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor `dense_1/kernel` has dtype f64, but the model uses f32",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn checkpoint_truncated_or_corrupt() -> TestResult {
    let dir = Scratch::new("ckpt-corrupt");
    let good = dir.path().join("good.safetensors");
    classifier(0, 3, 4, 2).save_weights(&good)?;
    let bytes = std::fs::read(&good)?;
    let header = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let mut model = classifier(1, 3, 4, 2);
    let cases: [(&str, Vec<u8>, String); 4] = [
        (
            "short.safetensors",
            bytes[..5].to_vec(),
            "the file has 5 bytes, fewer than the 8 of the header length".into(),
        ),
        (
            "cut-header.safetensors",
            bytes[..8 + header / 2].to_vec(),
            format!(
                "the header claims {header} bytes but only {} follow (the file is truncated)",
                header / 2
            ),
        ),
        (
            "cut-data.safetensors",
            bytes[..bytes.len() - 4].to_vec(),
            format!("the tensors' data offsets do not end where the file does ({} bytes of data after the header): the file is truncated or has trailing bytes", bytes.len() - 12 - header),
        ),
        (
            "garbage.safetensors",
            [&b"\x10\0\0\0\0\0\0\0"[..], &[b'!'; 16]].concat(),
            "the header is not the JSON table of tensors safetensors expects".into(),
        ),
    ];
    for (name, content, reason) in cases {
        let path = dir.write(name, &content);
        let err = refused_load(&mut model, &path);
        assert!(matches!(err, NnError::CorruptCheckpoint { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a valid safetensors checkpoint: {reason}",
                path.display()
            )
        );
    }
    let absent = dir.path().join("absent.safetensors");
    let err = refused_load(&mut model, &absent);
    assert!(matches!(err, NnError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with(&format!("{}: I/O error: ", absent.display())));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data files.

#[test]
fn truncated_gz_file() -> TestResult {
    let dir = Scratch::new("gz-truncated");
    let gz = gzip(&digit_images());
    let path = dir.write("images.gz", &gz[..gz.len() / 2]);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(&err, DataError::GzipTruncated { path: p, .. } if p == &path));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: truncated gzip stream: incomplete deflate stream",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn corrupted_gz_file() -> TestResult {
    let dir = Scratch::new("gz-corrupt");
    let mut gz = gzip(&digit_labels());
    let n = gz.len();
    gz[n - 6] ^= 0x01; // the CRC-32 of the uncompressed data
    let path = dir.write("labels.gz", &gz);
    let err = read_idx_labels(&path).unwrap_err();
    assert!(matches!(&err, DataError::GzipCorrupt { path: p, .. } if p == &path));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: corrupt gzip stream: corrupt gzip stream does not have a matching checksum",
            path.display()
        )
    );
    // Flipped bits in the compressed data.
    let mut gz = gzip(&digit_images());
    for b in gz.iter_mut().skip(10).take(8) {
        *b ^= 0x5a;
    }
    let path = dir.write("images.gz", &gz);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DataError::GzipCorrupt { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: corrupt gzip stream: corrupt deflate stream",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn idx_header_claims_more_than_the_file_holds() -> TestResult {
    let dir = Scratch::new("idx-claim");
    // 10^9 images of 28x28 claimed, three pixels present.
    let raw = idx_images(1_000_000_000, 28, 28, &[1, 2, 3]);
    {
        let (name, bytes) = ("raw", raw);
        let path = dir.write(name, &bytes);
        let (result, largest) = largest_allocation(|| read_idx_images(&path));
        let err = result.unwrap_err();
        assert!(matches!(
            err,
            DataError::Truncated {
                part: IdxPart::Payload,
                expected: 784_000_000_016,
                actual: 19,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: truncated IDX payload: expected 784000000016 bytes, found 19",
                path.display()
            )
        );
        // Nothing near the 784 GB claimed was reserved: at most what the file justifies.
        assert!(largest <= justified(name, bytes.len()), "{largest} bytes");
    }
    Ok(())
}

// ANCHOR: gzip_claims
#[test]
fn gzip_header_claims_more_than_deflate_can_inflate() -> TestResult {
    let dir = Scratch::new("gz-claim");
    // The same lie compressed: 784 GB claimed from a few dozen bytes, which no deflate stream
    // can expand to (at most MAX_GZIP_RATIO = 1032 times). Refused before inflating a byte.
    let gz = gzip(&idx_images(1_000_000_000, 28, 28, &[1, 2, 3]));
    let path = dir.write("raw.gz", &gz);
    let (result, largest) = largest_allocation(|| read_idx_images(&path));
    let err = result.unwrap_err();
    let n = gz.len() as u64;
    assert!(matches!(
        err,
        DataError::ImplausibleClaim { claimed: 784_000_000_016, compressed, ratio: MAX_GZIP_RATIO, .. }
            if compressed == n
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the IDX header claims 784000000016 bytes, but {n} bytes of gzip cannot inflate \
             to more than {} (at most 1032:1)",
            path.display(),
            n * 1032
        )
    );
    assert!(largest <= justified("raw.gz", gz.len()), "{largest} bytes");
    Ok(())
}

#[test]
fn gzip_stream_longer_than_its_header_claims() -> TestResult {
    let dir = Scratch::new("gz-long");
    // Two labels claimed, 100 000 in the stream: inflation stops one byte past the claim.
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 2];
    labels.extend(std::iter::repeat_n(1u8, 100_000));
    let path = dir.write("labels.gz", &gzip(&labels));
    let (result, largest) = largest_allocation(|| read_idx_labels(&path));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DataError::GzipTrailing { expected: 10, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the gzip stream inflates past the 10 bytes the IDX header describes \
             (decompression stopped there)",
            path.display()
        )
    );
    assert!(largest < 100_000, "{largest} bytes");
    Ok(())
}
// ANCHOR_END: gzip_claims

#[cfg(unix)]
#[test]
fn device_files_are_refused_not_read() -> TestResult {
    let zero = std::path::Path::new("/dev/zero");
    let message = |what: &str| {
        format!(
            "/dev/zero: a character device, not a regular file: {what} are read only from \
                 regular files, whose length bounds what is read"
        )
    };
    let err = read_idx_images(zero).unwrap_err();
    assert!(matches!(
        err,
        DataError::NotAFile {
            kind: "a character device",
            ..
        }
    ));
    assert_eq!(err.to_string(), message("data"));
    let err = read_idx_labels(zero).unwrap_err();
    assert!(matches!(err, DataError::NotAFile { .. }));
    let mut model = three_layers(0);
    let err = refused_load(&mut model, zero);
    assert!(matches!(
        err,
        NnError::NotAFile {
            kind: "a character device",
            ..
        }
    ));
    assert_eq!(err.to_string(), message("checkpoints"));
    Ok(())
}

#[test]
fn train_and_test_images_of_different_sizes() -> TestResult {
    let dir = Scratch::new("mnist-sizes");
    write_mnist(&dir);
    // Test images of 3x2 beside training images of 2x3 (whatever write_mnist wrote).
    let test = dir.write(
        &format!("{TEST_IMAGES}.gz"),
        &gzip(&idx_images(2, 3, 2, &[0; 12])),
    );
    dir.write(&format!("{TEST_LABELS}.gz"), &gzip(&idx_labels(2, &[1, 2])));
    let err = load_mnist(dir.path()).unwrap_err();
    let DataError::ImageSizeMismatch {
        train_path,
        train_rows,
        train_cols,
        test_path,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(test_path, &test);
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds images of {train_rows}x{train_cols} but {} holds images of 3x2: training \
             and test images must have one size",
            train_path.display(),
            test.display()
        )
    );
    Ok(())
}

#[test]
fn wrong_magic_number() -> TestResult {
    let dir = Scratch::new("magic");
    let path = dir.write("labels-as-images", &digit_labels());
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(
        err,
        DataError::BadMagic {
            expected: 0x803,
            found: 0x801,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: wrong IDX magic number: expected 0x00000803, found 0x00000801",
            path.display()
        )
    );
    Ok(())
}

#[test]
fn data_directory_does_not_exist() -> TestResult {
    let dir = Scratch::new("no-dir");
    let absent = dir.path().join("absent");
    let err = load_mnist(&absent).unwrap_err();
    assert!(matches!(&err, DataError::MissingDir { path } if path == &absent));
    assert_eq!(
        err.to_string(),
        format!(
            "data directory {} does not exist or is not a directory (it must hold the four MNIST \
             IDX files, e.g. train-images-idx3-ubyte.gz)",
            absent.display()
        )
    );
    // A file is not a directory either.
    let file = dir.write("file", b"");
    assert!(matches!(
        load_mnist(&file),
        Err(DataError::MissingDir { .. })
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The example program.

/// `target/<profile>/examples/mnist`, built by `cargo test` beside this test's executable
/// (`target/<profile>/deps/reliability-<hash>`), if it is there.
fn mnist_example() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir
        .join("examples")
        .join(format!("mnist{}", std::env::consts::EXE_SUFFIX));
    path.is_file().then_some(path)
}

#[test]
fn mnist_example_reports_bad_data_in_one_line() -> TestResult {
    let Some(example) = mnist_example() else {
        println!("skipped: examples/mnist is not built (plain `cargo test` builds it)");
        return Ok(());
    };
    let truncated = Scratch::new("example-truncated");
    write_mnist(&truncated);
    let gz = gzip(&digit_images());
    let images = truncated.write(&format!("{TRAIN_IMAGES}.gz"), &gz[..gz.len() - 10]);
    let wrong = Scratch::new("example-magic");
    write_mnist(&wrong);
    let labels_as_images = wrong.write(&format!("{TRAIN_IMAGES}.gz"), &gzip(&digit_labels()));
    let absent = wrong.path().join("absent");
    let cases = [
        (
            truncated.path().to_path_buf(),
            images,
            "truncated gzip stream",
        ),
        (
            wrong.path().to_path_buf(),
            labels_as_images,
            "wrong IDX magic number",
        ),
        (absent.clone(), absent, "does not exist"),
    ];
    for (dir, file, problem) in cases {
        let out = std::process::Command::new(&example)
            .arg("--data")
            .arg(&dir)
            .args(["--epochs", "1"])
            .env("RUST_BACKTRACE", "1")
            .output()?;
        let stderr = String::from_utf8(out.stderr)?;
        assert!(!out.status.success(), "{}: exit status 0", dir.display());
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
        let line = stderr.trim_end();
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(&*file.to_string_lossy()), "{line}");
        assert!(line.contains(problem), "{line}");
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!stderr.contains(bad), "{stderr}");
        }
        // The line says where the directory came from, and only that.
        assert!(line.ends_with("(directory given by --data)"), "{line}");
        assert!(!line.contains("DENDRITE_MNIST_DIR"), "{line}");
    }
    // Given by the environment instead, the line names the variable.
    let absent = wrong.path().join("absent");
    let out = std::process::Command::new(&example)
        .env("DENDRITE_MNIST_DIR", &absent)
        .args(["--epochs", "1"])
        .output()?;
    let stderr = String::from_utf8(out.stderr)?;
    assert!(!out.status.success());
    assert!(
        stderr
            .trim_end()
            .ends_with("(directory given by DENDRITE_MNIST_DIR)"),
        "{stderr}"
    );
    Ok(())
}

/// The same example on good files trains and prints its result line: the errors above come
/// from the data, not from the way the test runs the program.
#[test]
fn mnist_example_runs_on_good_data() -> TestResult {
    let Some(example) = mnist_example() else {
        println!("skipped: examples/mnist is not built (plain `cargo test` builds it)");
        return Ok(());
    };
    let dir = Scratch::new("example-good");
    write_mnist(&dir);
    let out = std::process::Command::new(&example)
        .arg("--data")
        .arg(dir.path())
        .args(["--epochs", "1", "--batch-size", "2"])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("test_loss=")),
        "{stdout}"
    );
    Ok(())
}
